import IECore
runTool("ie-metrics") { throw IEError.failure("not implemented yet") }
