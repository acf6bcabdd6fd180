import Foundation
import IECore
import IEConfig

/// The sbatch options of a job, from settings.yml's `slurm:` block (SPEC §1.1) and `--cluster=PARTITION`.
public struct SlurmJobOptions: Sendable, Equatable {
    public var partition: String?
    public var account: String?
    /// Time limit, CPUs per task and memory per node; nil: not asked for, the cluster's defaults apply.
    public var time: String?
    public var cpusPerTask: Int?
    public var mem: String?
    public var extra: [String]
    /// Nodes of a data-parallel training job (`num_nodes`): one MPI rank per node, each node whole (`--exclusive`),
    /// so a rank's threads are all the node's cores.
    public var nodes: Int = 1
    /// Seconds before the time limit at which Slurm sends USR1 to the batch shell, which makes training write
    /// its autosave and requeue itself (Slurm may send it up to 60 s earlier than asked).
    public var signalMarginSeconds: Int = 120

    public init(settings: SlurmSettings, cluster: String? = nil, nodes: Int = 1) {
        self.nodes = max(1, nodes)
        partition = cluster ?? settings.partition
        account = settings.account
        time = settings.time
        cpusPerTask = settings.cpusPerTask
        mem = settings.mem
        extra = settings.extra
        // A margin as long as the time limit would stop every attempt before its first batch: keep it below a tenth.
        if let time, let limit = SlurmJobOptions.seconds(ofTimeLimit: time) {
            signalMarginSeconds = max(10, min(signalMarginSeconds, limit / 10))
        }
    }

    /// Seconds of an sbatch `--time` value: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
    /// days-hours:minutes, days-hours:minutes:seconds. Nil for anything else (UNLIMITED, empty).
    public static func seconds(ofTimeLimit text: String) -> Int? {
        var days = 0
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if let dash = rest.firstIndex(of: "-") {
            guard let d = Int(rest[..<dash]) else { return nil }
            days = d
            rest = rest[rest.index(after: dash)...]
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        let p = parts.map { $0! }
        let (h, m, s): (Int, Int, Int)
        if text.contains("-") {
            (h, m, s) = (p[0], p.count > 1 ? p[1] : 0, p.count > 2 ? p[2] : 0)
        } else {
            switch p.count {
            case 1: (h, m, s) = (0, p[0], 0)
            case 2: (h, m, s) = (0, p[0], p[1])
            default: (h, m, s) = (p[0], p[1], p[2])
            }
        }
        return ((days * 24 + h) * 60 + m) * 60 + s
    }

    /// `--requeue --signal=B:USR1@<margin>` plus the settings that are set, then the job's own options (name,
    /// output, array...).
    public func sbatchArguments(jobName: String, output: String, more: [String] = []) -> [String] {
        var arguments = ["--parsable", "--job-name=\(jobName)", "--output=\(output)", "--open-mode=append", "--requeue",
                         "--signal=B:USR1@\(signalMarginSeconds)"]
        if let time { arguments.append("--time=\(time)") }
        if let cpusPerTask { arguments.append("--cpus-per-task=\(cpusPerTask)") }
        if let mem { arguments.append("--mem=\(mem)") }
        if let partition { arguments.append("--partition=\(partition)") }
        if let account { arguments.append("--account=\(account)") }
        if nodes > 1 { arguments += ["--nodes=\(nodes)", "--ntasks-per-node=1", "--exclusive"] }
        return arguments + extra + more
    }
}

/// Calls to the Slurm client tools (sbatch, squeue, scancel, sinfo), found on PATH.
public enum Slurm {
    /// A tool's status and output (ChildProcess's; `timedOut` is never true here: `run` throws instead).
    public typealias Output = ChildProcess.Output

    /// The full path of `tool` on PATH, nil when missing.
    public static func locate(_ tool: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        for dir in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Seconds a Slurm client tool may take (IE_SLURM_TIMEOUT, default 120): a controller that does not answer
    /// would otherwise hang ie-submit, or an ie-status run from cron, for good.
    public static var timeoutSeconds: TimeInterval {
        ProcessInfo.processInfo.environment["IE_SLURM_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 120
    }

    /// Runs a Slurm client tool and collects its output (ChildProcess: clean signal state, its own process
    /// group); one still running after `timeout` seconds is killed with whatever it started, and reported as a
    /// failure naming it.
    public static func run(_ tool: String, _ arguments: [String], stdin: String? = nil,
                           timeout: TimeInterval = timeoutSeconds) throws -> Output {
        guard let path = locate(tool) else {
            throw IEError.usage("\(tool) is not on PATH, expected the Slurm client tools (tools/start-local-slurm.sh starts a local cluster)")
        }
        let result = try ChildProcess.run(path, arguments, stdin: stdin, timeout: timeout)
        if result.timedOut {
            let queued = tool == "sbatch" ? " (the job may still have been queued: check squeue before submitting again)" : ""
            throw IEError.failure("\(tool) did not answer within \(Int(timeout)) s and was stopped: is the Slurm controller "
                                  + "reachable (scontrol ping)? IE_SLURM_TIMEOUT sets the limit\(queued)")
        }
        return result
    }

    /// Checks what a submission needs before anything is written: sbatch and sinfo on PATH, a responding
    /// controller, a known partition whose nodes can hold the job's CPUs and memory. Every failure is a usage
    /// error (exit 2).
    public static func checkSetup(options: SlurmJobOptions) throws {
        guard locate("sbatch") != nil else {
            throw IEError.usage("sbatch is not on PATH, expected the Slurm client tools (or train here with ie-train)")
        }
        let info = try run("sinfo", ["-h", "-N", "-o", SlurmPartitions.sinfoFormat])
        guard info.status == 0 else {
            let reason = info.stderr.split(separator: "\n").first.map(String.init) ?? "exit \(info.status)"
            throw IEError.failure("the Slurm controller does not answer (sinfo: \(reason)), expected a running cluster")
        }
        try SlurmPartitions(sinfoOutput: info.stdout).check(options)
        // The other options (account, time, extra) are checked by sbatch itself without submitting.
        let test = try run("sbatch", options.sbatchArguments(jobName: "ie-check", output: "/dev/null").filter { $0 != "--parsable" }
                                     + ["--test-only", "--wrap=true"])
        guard test.status == 0 else {
            let reason = test.stderr.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " ")
            let nodes = options.nodes > 1 ? " and num_nodes=\(options.nodes) nodes in the partition" : ""
            throw IEError.usage("Slurm: sbatch refuses the job options (\(reason)), expected valid slurm: settings in settings.yml\(nodes)")
        }
    }

    /// Submits a batch script; returns the job id (an array job's id for `--array`).
    public static func submit(script: String, arguments: [String]) throws -> String {
        let result = try run("sbatch", arguments, stdin: script)
        let id = result.stdout.split(separator: "\n").last.map { String($0.split(separator: ";")[0]) }?
            .trimmingCharacters(in: .whitespaces) ?? ""
        guard result.status == 0, !id.isEmpty, id.allSatisfy(\.isNumber) else {
            let reason = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " ")
            throw IEError.failure("sbatch failed (\(reason.isEmpty ? "exit \(result.status)" : reason)), expected a job id")
        }
        return id
    }

    public static func cancel(_ jobID: String) {
        _ = try? run("scancel", [jobID])
    }

    /// Job states from squeue: by id (array elements also as `<array>_<k>`), or why squeue gave none.
    public struct JobStates: Sendable {
        public var states: [String: JobState] = [:]
        /// squeue's failure ("exit 1: <its message>", "no answer in 10 s"): every state is unknown; nil when it
        /// answered or was not asked.
        public var failure: String?
    }

    public struct JobState: Sendable, Equatable {
        public var state: String
        public var reason: String
    }

    /// Seconds squeue may take: a controller that does not answer makes it retry for about 18 s.
    public static let squeueTimeout: TimeInterval = 10

    /// State and reason of jobs by id (array elements as `<array>_<k>`), from one squeue call for all of them
    /// (finished jobs stay listed for MinJobAge). Missing squeue or unknown ids give no entry; squeue failing or
    /// taking longer than `timeout` gives `failure`.
    public static func jobStates(_ ids: [String], timeout: TimeInterval = squeueTimeout) -> JobStates {
        guard !ids.isEmpty, let squeue = locate("squeue") else { return JobStates() }
        let unique = ids.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let result: ChildProcess.Output
        do {
            result = try ChildProcess.run(squeue, ["-h", "-r", "--states=all", "-o", "%i|%A|%T|%r", "-j", unique.joined(separator: ",")],
                                          timeout: timeout)
        } catch let error as IEError {
            return JobStates(failure: error.message)
        } catch {
            return JobStates(failure: "\(error)")
        }
        if result.timedOut { return JobStates(failure: "no answer in \(Int(timeout)) s") }
        guard result.status == 0 else {
            let message = result.stderr.split(separator: "\n").first.map { ": " + $0.trimmingCharacters(in: .whitespaces) } ?? ""
            return JobStates(failure: "exit \(result.status)\(message)")
        }
        var states: [String: JobState] = [:]
        for line in result.stdout.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            // An array element is known both as <array>_<k> and by its own job id (what the job records itself).
            guard fields.count == 4 else { continue }
            states[fields[0]] = JobState(state: fields[2], reason: fields[3])
            states[fields[1]] = JobState(state: fields[2], reason: fields[3])
        }
        return JobStates(states: states)
    }
}

/// The partitions of a cluster and the CPUs and memory of their nodes, from `sinfo -h -N -o "%N|%P|%c|%m"` (one
/// line per node and partition; sinfo marks the default partition with `*`). A job's request is checked against
/// them before submitting, so that a request no node can hold is one message naming what was asked and what the
/// partition has, rather than sbatch's "Requested node configuration is not available".
public struct SlurmPartitions: Sendable, Equatable {
    public static let sinfoFormat = "%N|%P|%c|%m"

    public struct Node: Sendable, Equatable {
        public var name: String
        public var cpus: Int
        /// Memory in MiB (sinfo's unit).
        public var memoryMiB: Int
    }

    /// Partition names in sinfo's order, each with its nodes.
    public var names: [String] = []
    public var nodes: [String: [Node]] = [:]
    public var defaultPartition: String?

    public init(sinfoOutput: String) {
        for line in sinfoOutput.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 4, !fields[1].isEmpty else { continue }
            var partition = fields[1]
            if partition.hasSuffix("*") {
                partition.removeLast()
                defaultPartition = partition
            }
            if nodes[partition] == nil { names.append(partition) }
            // "2+" or "1000+" appear only without -N; the leading number is the smallest node's.
            let cpus = Int(fields[2].prefix { $0.isNumber }) ?? 0
            let memory = Int(fields[3].prefix { $0.isNumber }) ?? 0
            nodes[partition, default: []].append(Node(name: fields[0], cpus: cpus, memoryMiB: memory))
        }
    }

    /// MiB of an sbatch `--mem` value (a number with an optional K, M, G or T suffix; M when none); nil when it
    /// is not one. 0 means "all the memory of the node".
    public static func mebibytes(ofMemory text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        guard let value = Double(digits) else { return nil }
        let factor: Double
        switch trimmed.dropFirst(digits.count) {
        case "", "M", "MB": factor = 1
        case "K", "KB": factor = 1.0 / 1024
        case "G", "GB": factor = 1024
        case "T", "TB": factor = 1024 * 1024
        default: return nil
        }
        return Int((value * factor).rounded(.up))
    }

    /// Throws a usage error when the partition (the options', else the default) is unknown, or none of its
    /// nodes has the CPUs per task or the memory asked for, or it has fewer nodes than the job takes.
    public func check(_ options: SlurmJobOptions) throws {
        guard let partition = options.partition ?? defaultPartition else {
            throw IEError.usage("Slurm: no partition given and the cluster has no default partition, expected --cluster=PARTITION "
                                + "or slurm.partition in settings.yml (partitions: \(names.joined(separator: ", ")))")
        }
        guard let members = nodes[partition] else {
            let hint = closestMatch(partition, in: names).map { " (closest: \($0))" } ?? ""
            throw IEError.usage("Slurm: unknown partition '\(partition)'\(hint), expected one of \(names.joined(separator: ", ")); "
                                + "set --cluster=PARTITION or slurm.partition in settings.yml")
        }
        let asked = (cpus: options.cpusPerTask ?? 1, memory: options.mem.flatMap(SlurmPartitions.mebibytes(ofMemory:)) ?? 0)
        let fitting = members.filter { $0.cpus >= asked.cpus && $0.memoryMiB >= asked.memory }
        if fitting.count < options.nodes {
            var request: [String] = []
            if let cpus = options.cpusPerTask { request.append("\(cpus) CPUs per task (slurm.cpus_per_task)") }
            if let mem = options.mem { request.append("\(mem) of memory (slurm.mem)") }
            if options.nodes > 1 { request.append("num_nodes=\(options.nodes) nodes") }
            let largest = (cpus: members.map(\.cpus).max() ?? 0, memory: members.map(\.memoryMiB).max() ?? 0)
            throw IEError.usage("Slurm: the job asks for \(request.joined(separator: " and ")) but partition '\(partition)' has "
                                + "\(members.count) node\(members.count == 1 ? "" : "s") with at most \(largest.cpus) CPUs and "
                                + "\(largest.memory)M of memory\(fitting.isEmpty || options.nodes == 1 ? "" : " (\(fitting.count) of them fit)"); "
                                + "expected requests that fit (or leave them out of settings.yml for the cluster's defaults)")
        }
    }
}
