import IECore
runTool("ie-stats") { throw IEError.failure("not implemented yet") }
