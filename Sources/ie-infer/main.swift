import IECore
runTool("ie-infer") { throw IEError.failure("not implemented yet") }
