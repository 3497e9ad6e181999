import CUring
import Glibc
import Testing

/// The io_uring wrapper against a real pipe: a write and a read submitted together complete.
@Test func ringWritesAndReadsThroughAPipe() throws {
    var error: Int32 = 0
    let ring = try #require(mp_ring_create(8, 0, &error), "io_uring_queue_init failed: \(error)")
    defer { mp_ring_destroy(ring) }
    var fds: [Int32] = [0, 0]
    #expect(pipe(&fds) == 0)
    defer { close(fds[0]); close(fds[1]) }
    let message = Array("migpilot over io_uring".utf8)
    var received = [UInt8](repeating: 0, count: message.count)
    message.withUnsafeBytes { m in
        #expect(mp_ring_prep_write(ring, fds[1], m.baseAddress, UInt32(m.count), 0, 1) == 0)
    }
    #expect(mp_ring_submit_and_wait(ring, 1) >= 1)
    var results: [UInt64: Int32] = [:]
    var data: UInt64 = 0, res: Int32 = 0
    while mp_ring_next_completion(ring, &data, &res) == 1 { results[data] = res }
    received.withUnsafeMutableBytes { r in
        #expect(mp_ring_prep_read(ring, fds[0], r.baseAddress, UInt32(r.count), 0, 2) == 0)
    }
    #expect(mp_ring_submit_and_wait(ring, 1) >= 1)
    while mp_ring_next_completion(ring, &data, &res) == 1 { results[data] = res }
    #expect(results[1] == Int32(message.count))
    #expect(results[2] == Int32(message.count))
    #expect(received == message)
}

/// Request numbers computed in C match the kernel's encoding (_IOWR('f', 16, 96 bytes)).
@Test func pagemapScanRequestNumber() {
    #expect(MemoryLayout<mp_pm_scan_arg>.size == 96)
    #expect(mp_ioctl_pagemap_scan == 0xC060_6610)
}
