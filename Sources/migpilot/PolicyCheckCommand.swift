import ArgumentParser
import Foundation
import Policies

/// `migpilot policy check FILE…`: every error of every file, with its place and field.
struct PolicyCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check policy files and report every error with its line and field.",
        discussion: """
            Reads each file whole and reports every error, not only the first:
            unknown keys (with the closest known one), wrong types, values out of
            range, bad units, missing fields, duplicate keys, YAML syntax errors
            and settings that contradict each other, each as
            FILE:LINE:COLUMN: field 'PATH': MESSAGE. A file without errors
            prints FILE: ok (policy NAME). A file with a top-level parameters
            list and no name is checked as a parameter space (the search space
            of tune); --space says so for every file. - reads standard input.

            Exit codes: 0 every file is valid; 65 a file has errors; 66 a file
            cannot be read.

            Examples:
              migpilot policy check policies/*.yaml
              migpilot policy show policies/nova.yaml | migpilot policy check -
              migpilot policy check --space policies/adaptive-space.yaml
              migpilot policy check --json my-policy.yaml
            """
    )

    @Argument(help: "Policy files (YAML); - reads standard input.") var files: [String]
    @Flag(help: "Check every file as a parameter space (what tune searches).") var space = false
    @Flag(help: "Print one JSON object per file.") var json = false

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one policy file (or - for standard input)") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("- (standard input) can be read only once") }
    }

    func run() throws {
        var failures: [PolicyLoadError] = []
        for file in files {
            let outcome = check(file)
            if case .failure(let error) = outcome { failures.append(error) }
            print(json ? Self.json(file, outcome) : Self.human(file, outcome))
        }
        guard let worst = failures.first(where: { ExitCodes.forPolicy($0) == ExitCodes.dataError }) ?? failures.first else { return }
        let summary = "\(failures.count) of \(files.count) file\(files.count == 1 ? "" : "s") not valid"
        throw fail(summary, ExitCodes.forPolicy(worst))
    }

    enum Outcome {
        /// The policy's name (or the space's point count).
        case ok(String)
        case failure(PolicyLoadError)
    }

    private func check(_ file: String) -> Outcome {
        do {
            let document = space ? .parameterSpace(try ParameterSpace.load(path: file)) : try PolicyLoader.loadDocument(path: file)
            switch document {
            case .policy(let policy): return .ok("policy \(policy.name)")
            case .parameterSpace(let space):
                return .ok("parameter space: \(space.parameters.map(\.field).joined(separator: " × ")), \(space.count) points")
            }
        } catch {
            return .failure(error)
        }
    }

    private static func human(_ file: String, _ outcome: Outcome) -> String {
        switch outcome {
        case .ok(let what): "\(displayName(file)): ok (\(what))"
        case .failure(let error): error.description
        }
    }

    /// One file's result for machines (keys sorted, as `trace info --json`).
    struct Report: Encodable {
        struct Problem: Encodable {
            var line: Int?
            var column: Int?
            var field: String
            var message: String
        }

        var file: String
        var ok: Bool
        var summary: String?
        var unreadable: String?
        var errors: [Problem] = []
    }

    private static func json(_ file: String, _ outcome: Outcome) -> String {
        var report = Report(file: displayName(file), ok: false)
        switch outcome {
        case .ok(let what):
            report.ok = true
            report.summary = what
        case .failure(.unreadable(_, let reason)):
            report.unreadable = reason
        case .failure(.invalid(let errors)):
            report.errors = errors.errors.map { Report.Problem(line: $0.line, column: $0.column, field: $0.field, message: $0.message) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(report)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func displayName(_ file: String) -> String { file == "-" ? PolicyLoader.standardInputName : file }
}
