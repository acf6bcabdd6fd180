/// The toolbox's version, defined once: `ie-<tool> --version` prints it (IECommand.runCommand) and every run
/// records it in outputs/buildinformation.json (IERun.BuildInformation).
public enum Toolbox {
    public static let version = "0.1.0"
}
