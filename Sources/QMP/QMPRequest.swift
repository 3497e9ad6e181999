/// One message from a client, checked the way QEMU's `qmp_dispatch` checks it: an object with
/// `execute` (or, once out-of-band is enabled, `exec-oob`) naming a command, an optional
/// `arguments` object and an optional `id` of any type, echoed in the reply. Nothing else.
struct QMPRequest {
    enum Parsed {
        case request(QMPRequest)
        case refused(QMPError, id: JSONValue?)
    }

    let command: String
    let arguments: JSONValue
    let id: JSONValue?
    let outOfBand: Bool

    /// The request in `message`, or QEMU's error for it (with the `id`, when there was one, so
    /// that the reply can still carry it).
    static func parse(_ message: JSONValue, outOfBandEnabled: Bool) -> Parsed {
        guard let members = message.objectValue else {
            return .refused(QMPError(.genericError, "QMP input must be a JSON object"), id: nil)
        }
        let id = message["id"]
        func fail(_ desc: String) -> Parsed { .refused(QMPError(.genericError, desc), id: id) }
        var command: (name: String, oob: Bool)?
        for m in members {
            switch m.key {
            case _ where m.key == "execute" || (m.key == "exec-oob" && outOfBandEnabled):
                // Without out-of-band, `exec-oob` is just a member QEMU does not expect.
                guard let name = m.value.stringValue else { return fail("QMP input member '\(m.key)' must be a string") }
                if command != nil { return fail("QMP input member 'execute' clashes with 'exec-oob'") }
                command = (name, m.key == "exec-oob")
            case "arguments":
                guard m.value.objectValue != nil else { return fail("QMP input member 'arguments' must be an object") }
            case "id":
                continue
            default:
                return fail("QMP input member '\(m.key)' is unexpected")
            }
        }
        guard let command else { return fail("QMP input lacks member 'execute'") }
        return .request(QMPRequest(command: command.name, arguments: message["arguments"] ?? .object([]), id: id, outOfBand: command.oob))
    }
}
