import Migration
import Testing

/// Which stale runs a destination moves out at the switch to postcopy, and which it drops.
@Suite struct StaleRunDropTests {
    @Test func autoMovesLongRunsOnlyWhenTheyAreWorthTheFixedCost() {
        let long = StaleRunDrop.shortestMovedRun, enough = StaleRunDrop.fewestMovedPages
        #expect(StaleRunDrop.auto.moves(runsOf: [1, enough, 3]) == [false, true, false])
        #expect(StaleRunDrop.auto.moves(runsOf: [long - 1, long]) == [false, false], "too few pages to move at all")
        let many = [UInt64](repeating: long, count: Int(enough / long))
        #expect(StaleRunDrop.auto.moves(runsOf: many + [2]) == many.map { _ in true } + [false])
        #expect(StaleRunDrop.move.moves(runsOf: [1, 2]) == [true, true])
        #expect(StaleRunDrop.drop.moves(runsOf: [enough]) == [false])
        #expect(StaleRunDrop.auto.moves(runsOf: []) == [])
    }
}
