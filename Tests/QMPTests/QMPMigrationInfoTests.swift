import Testing
@testable import QMP

/// query-migrate as QEMU 7.2 writes it, and what a peer that writes it wrongly gets.
@Suite struct QMPMigrationInfoTests {
    @Test func readsQEMUsFieldsInQEMUsUnits() throws {
        let text = """
            {"expected-downtime": 312, "status": "active", "setup-time": 3, "total-time": 2514,
             "ram": {"total": 134807552, "postcopy-requests": 7, "dirty-sync-count": 2, "multifd-bytes": 0,
                     "pages-per-second": 4898, "downtime-bytes": 0, "page-size": 4096, "remaining": 40960000,
                     "postcopy-bytes": 0, "mbps": 160.5, "transferred": 50331648, "precopy-bytes": 50331648,
                     "duplicate": 20480, "dirty-pages-rate": 19999, "skipped": 0, "normal-bytes": 49283072, "normal": 12032}}
            """
        let info = try QMPMigrationInfo(try JSONParser.parse(text))
        #expect(info.status == .active)
        #expect(info.totalTimeMilliseconds == 2514)
        #expect(info.expectedDowntimeMilliseconds == 312)
        #expect(info.downtimeMilliseconds == nil, "QEMU gives downtime only once completed")
        #expect(info.total == 134_807_552 && info.remaining == 40_960_000 && info.transferred == 50_331_648)
        #expect(info.dirtySyncCount == 2 && info.postcopyRequests == 7 && info.pageSize == 4096)
        #expect(info.dirtyPagesRate == 19999)
        #expect(info.bandwidthBytesPerSecond == 160.5e6 / 8)
    }

    @Test func statesQEMUHasAndMigpilotHasNotAreMapped() throws {
        #expect(try QMPMigrationInfo(["status": "postcopy-recover"]).status == .postcopyRecover)
        #expect(try QMPMigrationInfo(["status": "wait-unplug"]).status == .setup)
        #expect(try QMPMigrationInfo(["status": "colo"]).status == .active)
        let none = try QMPMigrationInfo([:])
        #expect(none.status == .none && none.rawStatus == "none" && none.total == 0 && none.pageSize == 4096)
    }

    @Test func wrongShapesAreErrorsOrZerosNeverATrap() throws {
        #expect(throws: QMPMigrationError.self) { try QMPMigrationInfo(["a", "list"]) }
        let odd = try QMPMigrationInfo(["status": 3, "ram": ["remaining": -5, "page-size": 0, "mbps": "fast", "dirty-sync-count": "two"]])
        #expect(odd.status == .none && odd.remaining == 0 && odd.pageSize == 4096 && odd.mbps == 0 && odd.dirtySyncCount == 0)
        #expect(QMPMigration.integer(.infinity) == Int64.max)
        #expect(QMPMigration.integer(.nan) == 0)
        #expect(QMPMigration.integer(-3) == 0)
        #expect(QMPMigration.integer(1e30) == Int64.max)
        #expect(QMPMigration.integer(300.7) == 300)
    }
}
