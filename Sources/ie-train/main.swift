import IECore
runTool("ie-train") { throw IEError.failure("not implemented yet") }
