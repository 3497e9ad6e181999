import Dispatch
import Synchronization
import Transport

/// One client's connection to a `QMPServer`, from the greeting to its end. In capabilities
/// negotiation mode only `qmp_capabilities` is accepted, as in QEMU. Afterwards in-band
/// commands run one after another on the session's own queue, in the order they came, with
/// errors for bad input queued among them so that replies keep that order; `exec-oob`
/// commands (once the client enabled `oob`) run at once on the reader, as QEMU runs them on
/// the monitor's I/O thread, so they are answered even while an in-band command runs.
final class QMPSession: Sendable {
    let stream: QMPStream
    private let commands: QMPCommandRegistry
    private let greeting: JSONValue
    private let inBand = DispatchQueue(label: "qmp.session.in-band")
    private struct Mode { var negotiated = false; var outOfBand = false }
    private let mode = Mutex(Mode())

    init(channel: any ByteChannel, commands: QMPCommandRegistry, greeting: JSONValue) {
        stream = QMPStream(channel: channel)
        self.commands = commands
        self.greeting = greeting
    }

    /// Capabilities negotiation is complete: events may go to this client.
    var negotiated: Bool { mode.withLock { $0.negotiated } }

    /// Serves the client until it hangs up (or the channel fails). Returns when every queued
    /// command has been answered.
    func serve() {
        defer { inBand.sync {} }
        do {
            try stream.send(greeting)
            while let incoming = try stream.next() {
                switch incoming {
                case .malformed(let why):
                    let desc = why.hasPrefix("JSON parse error") ? why : "JSON parse error, \(why)"
                    queue { self.reply(QMPError(.genericError, desc), id: nil) }
                case .message(let message):
                    if !negotiated {
                        // Nothing can run concurrently yet, and the next message must be read
                        // knowing whether out-of-band was enabled.
                        answer(message)
                        continue
                    }
                    switch QMPRequest.parse(message, outOfBandEnabled: mode.withLock { $0.outOfBand }) {
                    case let .refused(error, id):
                        queue { self.reply(error, id: id) }
                    case .request(let request) where request.outOfBand:
                        respond(to: request)
                    case .request(let request):
                        queue { self.respond(to: request) }
                    }
                }
            }
        } catch {
            // The client is gone or its channel failed: the server waits for the next one.
        }
    }

    private func queue(_ work: @escaping @Sendable () -> Void) { inBand.async(execute: work) }

    private func answer(_ message: JSONValue) {
        switch QMPRequest.parse(message, outOfBandEnabled: false) {
        case let .refused(error, id): reply(error, id: id)
        case .request(let request): respond(to: request)
        }
    }

    private func respond(to request: QMPRequest) {
        do throws(QMPError) {
            send(["return": try run(request)], id: request.id)
        } catch {
            reply(error, id: request.id)
        }
    }

    private func run(_ request: QMPRequest) throws(QMPError) -> JSONValue {
        let negotiated = self.negotiated
        if request.command == "qmp_capabilities" {
            guard !negotiated else {
                throw QMPError(.commandNotFound, "Capabilities negotiation is already complete, command ignored")
            }
            let enable = try QMPCommand("qmp_capabilities", parameters: [QMPParameter("enable", .array, optional: true)]) { $0 }
                .run(request.arguments)["enable"]?.arrayValue ?? []
            for (i, capability) in enable.enumerated() {
                guard let name = capability.stringValue else { throw QMPError(.genericError, "Invalid parameter type for 'enable[\(i)]', expected: string") }
                guard name == "oob" else { throw QMPError(.genericError, "Parameter 'enable[\(i)]' does not accept value '\(name)'") }
            }
            mode.withLock { $0 = Mode(negotiated: true, outOfBand: !enable.isEmpty) }
            return .object([])
        }
        guard negotiated else {
            throw QMPError(.commandNotFound, "Expecting capabilities negotiation with 'qmp_capabilities'")
        }
        guard let command = commands.command(named: request.command) ?? builtin(request.command) else {
            throw QMPError(.commandNotFound, "The command \(request.command) has not been found")
        }
        if request.outOfBand, !command.allowsOutOfBand {
            throw QMPError(.genericError, "The command \(request.command) does not support OOB")
        }
        return try command.run(request.arguments)
    }

    /// What every QEMU monitor answers besides the registered commands.
    private func builtin(_ name: String) -> QMPCommand? {
        switch name {
        case "query-version":
            return QMPCommand(name) { [greeting] _ in greeting["QMP"]?["version"] ?? .object([]) }
        case "query-commands":
            return QMPCommand(name) { [commands] _ in
                .array((commands.names + ["qmp_capabilities", "query-commands", "query-version"]).sorted().map { ["name": .string($0)] })
            }
        default:
            return nil
        }
    }

    private func reply(_ error: QMPError, id: JSONValue?) { send(["error": error.json], id: id) }

    private func send(_ reply: JSONValue, id: JSONValue?) {
        var members = reply.objectValue ?? []
        if let id { members.append((key: "id", value: id)) }
        // A client that left before its answer is not an error of the server's.
        try? stream.send(.object(members))
    }
}
