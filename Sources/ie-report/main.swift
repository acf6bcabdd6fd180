import IECore
runTool("ie-report") { throw IEError.failure("not implemented yet") }
