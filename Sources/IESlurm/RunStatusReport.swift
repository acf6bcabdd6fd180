import Foundation
import IECore
import IERun

/// `ie-status RUN`: one line per run (the run, then each cross-validation child) with its run.json
/// status, its Slurm job and that job's state from squeue, the last completed epoch and its training loss
/// (from outputs/Train/epoch_metrics.csv).
public enum RunStatusReport {
    public struct Line: Sendable, Equatable {
        public var run: String
        public var status: String
        public var job: String
        public var jobState: String
        public var epoch: String
        public var lastLoss: String
    }

    /// The lines of `runs` (each followed by its cross-validation children), with one squeue call for all
    /// their jobs, and the warning to print when squeue failed (JOB_STATE is then `?`, unknown, not `-`).
    public static func lines(for runs: [RunDirectory]) throws -> (lines: [Line], warning: String?) {
        var all: [(RunDirectory, RunInfo)] = []
        for run in runs {
            let info = try run.readInfo()
            all.append((run, info))
            for id in info.children {
                let path = URL(fileURLWithPath: run.path).deletingLastPathComponent().appendingPathComponent(id).path
                if let child = try? RunDirectory.open(path: path), let childInfo = try? child.readInfo() { all.append((child, childInfo)) }
            }
        }
        let query = Slurm.jobStates(all.compactMap { $0.1.slurmJobId })
        let lines = all.map { run, info in
            let job = info.slurmJobId ?? "-"
            var state = "-"
            if let id = info.slurmJobId {
                if query.failure != nil {
                    state = "?"
                } else if let known = query.states[id] {
                    state = known.reason == "None" || known.reason.isEmpty ? known.state : "\(known.state) (\(known.reason))"
                }
            }
            let (epoch, loss) = lastEpoch(run)
            // run.json says "running" until its writer ends it; a writer killed by SIGKILL (or a power cut) never
            // does. Running with no job in the queue and nobody holding the run's lock is a stopped run (not when
            // the queue could not be asked: "?").
            var status = info.status.rawValue
            if info.status == .running, state == "-", !RunLock.isHeld(run: run.path) {
                status = "stopped (run.json: running; nothing holds the run)"
            }
            return Line(run: run.id, status: status, job: job, jobState: state, epoch: epoch, lastLoss: loss)
        }
        let warning = query.failure.map { "squeue failed (\($0)): job states unknown" }
        return (lines, warning)
    }

    /// Last row of Train/epoch_metrics.csv: (epoch, loss) as printed there, "-" when training has not logged yet.
    static func lastEpoch(_ run: RunDirectory) -> (String, String) {
        let path = run.layout.epochMetrics(mode: "Train")
        guard FileManager.default.fileExists(atPath: path), let table = try? CSVTable.read(path: path),
              let e = table.columnIndex("epoch"), let l = table.columnIndex("loss"), let last = table.rows.last,
              last.count > max(e, l) else { return ("-", "-") }
        return (last[e], last[l])
    }

    public static func text(_ lines: [Line]) -> String {
        let header = Line(run: "RUN", status: "STATUS", job: "SLURM_JOB", jobState: "JOB_STATE", epoch: "EPOCH", lastLoss: "LAST_LOSS")
        let all = [header] + lines
        func width(_ f: (Line) -> String) -> Int { all.map { f($0).count }.max() ?? 0 }
        let w = [width(\.run), width(\.status), width(\.job), width(\.jobState), width(\.epoch)]
        return all.map { l in
            [l.run.padding(toLength: w[0], withPad: " ", startingAt: 0), l.status.padding(toLength: w[1], withPad: " ", startingAt: 0),
             l.job.padding(toLength: w[2], withPad: " ", startingAt: 0), l.jobState.padding(toLength: w[3], withPad: " ", startingAt: 0),
             l.epoch.padding(toLength: w[4], withPad: " ", startingAt: 0), l.lastLoss].joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
