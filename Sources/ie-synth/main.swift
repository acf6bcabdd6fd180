import IECore
runTool("ie-synth") { throw IEError.failure("not implemented yet") }
