import Foundation
import Policies

/// Files of the repository, found from this source file's place.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func text(_ relative: String) throws -> String { try String(contentsOfFile: path(relative), encoding: .utf8) }

    /// The errors a malformed file gives, one line each, the file shown by its name alone.
    static func errors(ofMalformed name: String) throws -> [String] {
        loadErrors(try text("Tests/PoliciesTests/Malformed/\(name)"), file: name)
    }
}

/// The errors a policy text gives, one line each (none when it loads).
func loadErrors(_ text: String, file: String = "") -> [String] {
    do {
        _ = try PolicyLoader.parse(text, file: file)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

extension Repository {
    /// The names of the files in a folder of the repository.
    static func files(in relative: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path(relative)).sorted()
    }
}
