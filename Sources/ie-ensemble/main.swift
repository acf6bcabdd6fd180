import IECore
runTool("ie-ensemble") { throw IEError.failure("not implemented yet") }
