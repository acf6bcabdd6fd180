import IECore
runTool("ie-split") { throw IEError.failure("not implemented yet") }
