import Foundation
@testable import Traces

/// A fresh directory under the system's temporary directory, removed by `cleanup`.
struct ScratchDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

/// Intervals of random sorted sets, some empty, some dense, some touching the last page.
func randomIntervals(count: Int, pages: UInt64, seed: UInt64) -> [[PageRange]] {
    var rng = SeededRandom(seed: seed)
    return (0..<count).map { i in
        var bitmap = PageBitmap(pages: pages)
        let writes = i % 7 == 0 ? 0 : Int(rng.below(pages * 2))
        for _ in 0..<writes { bitmap.insert(rng.below(pages)) }
        if i % 5 == 1 { bitmap.insert(PageRange(start: pages - 3, count: 3)) }
        return bitmap.ranges(clearing: true)
    }
}
