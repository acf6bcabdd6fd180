import Foundation

/// Runs the python reference implementations the tests compare against (numpy, scipy, nibabel, scikit-learn,
/// nbformat, safetensors, SimpleITK, pandas, matplotlib, nbconvert, ipykernel, pillow: installed by `make test` from tests/requirements.txt). A missing python or module is an
/// error, not a skip: the oracles are part of the test setup.
public enum PythonOracle {
    public struct Failure: Error, CustomStringConvertible {
        public var status: Int32
        public var stderr: String
        public var description: String { "python exited with status \(status): \(stderr)" }
    }

    /// `python -c script arguments...`, with `input` on stdin; returns stdout.
    public static func run(_ script: String, arguments: [String] = [], input: Data? = nil,
                           python: String = "python3") throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python.hasPrefix("/") ? python : "/usr/bin/env")
        process.arguments = (python.hasPrefix("/") ? [] : [python]) + ["-c", script] + arguments
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Feed stdin and drain stderr on other threads so no pipe can fill up and block the child.
        let group = DispatchGroup()
        if let input {
            group.enter()
            Thread { stdin.fileHandleForWriting.write(input); try? stdin.fileHandleForWriting.close(); group.leave() }.start()
        }
        final class Box: @unchecked Sendable { var data = Data() }
        let errors = Box()
        group.enter()
        Thread { errors.data = stderr.fileHandleForReading.readDataToEndOfFile(); group.leave() }.start()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(status: process.terminationStatus, stderr: String(decoding: errors.data, as: UTF8.self))
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// As `run`, parsing stdout as JSON.
    public static func json(_ script: String, arguments: [String] = [], input: Data? = nil,
                            python: String = "python3") throws -> Any {
        try JSONSerialization.jsonObject(with: Data(run(script, arguments: arguments, input: input, python: python).utf8))
    }
}
