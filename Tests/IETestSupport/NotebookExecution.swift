import Foundation

/// Executes a saved report.ipynb with Jupyter (`jupyter nbconvert --to notebook --execute`, the python3 kernel of
/// the test environment, run from the notebook's folder) and compares the executed cells with the saved ones.
public enum NotebookExecution {
    public struct Comparison: Sendable {
        /// Cells whose recomputed output differs from the saved one, or that cannot recompute it: one line each.
        public var problems: [String]
        /// Code cells whose tables (text/html and text/plain), printed text and plots were compared.
        public var tables: Int
        public var texts: Int
        public var plots: Int
        public var codeCells: Int
    }

    /// Runs `notebook` (left unchanged) and returns the comparison, cell by cell: every code cell must hold python
    /// beyond comments and saved outputs, and its executed outputs must be error-free and hold the same tables
    /// (text/html and text/plain equal), the same printed text, and a PNG where a PNG was saved.
    public static func executeAndCompare(notebook: String, timeout: Int = 300) throws -> Comparison {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ie-nb-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let script = """
            import json, subprocess, sys, nbformat
            import matplotlib.font_manager  # builds matplotlib's font cache here, not inside a cell (it says so on stderr)
            source, scratch, timeout = sys.argv[1], sys.argv[2], sys.argv[3]
            run = subprocess.run([sys.executable, '-m', 'nbconvert', '--to', 'notebook', '--execute',
                                  '--ExecutePreprocessor.kernel_name=python3', f'--ExecutePreprocessor.timeout={timeout}',
                                  '--allow-errors', '--output-dir', scratch, '--output', 'executed', source],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit('nbconvert failed: ' + run.stderr[-3000:])
            saved = nbformat.read(source, as_version=4)
            executed = nbformat.read(scratch + '/executed.ipynb', as_version=4)
            problems, counts = [], {'tables': 0, 'texts': 0, 'plots': 0, 'codeCells': 0}
            if len(saved.cells) != len(executed.cells):
                problems.append(f'{len(saved.cells)} cells saved, {len(executed.cells)} executed')
            for i, (a, b) in enumerate(zip(saved.cells, executed.cells)):
                if a.cell_type != 'code':
                    continue
                counts['codeCells'] += 1
                name = f'cell {i} ({a.source.splitlines()[0] if a.source else "empty"})'
                if not any(line.strip() and not line.lstrip().startswith('#') for line in a.source.splitlines()):
                    problems.append(f'{name}: no python beyond comments')
                if not a.outputs:
                    problems.append(f'{name}: no saved outputs')
                if not b.outputs:
                    problems.append(f'{name}: no outputs after execution')
                errors = [o for o in b.outputs if o.output_type == 'error' or (o.output_type == 'stream' and o.name == 'stderr')]
                for o in errors:
                    problems.append(f'{name}: ' + (o.get('ename', '') + ' ' + o.get('evalue', '') if o.output_type == 'error' else o.text)[:500])
                def texts(outputs):
                    return ''.join(o.text for o in outputs if o.output_type == 'stream' and o.name == 'stdout')
                def tables(outputs):
                    return [(o.data['text/html'], o.data.get('text/plain')) for o in outputs
                            if o.output_type in ('display_data', 'execute_result') and 'text/html' in o.data]
                def pngs(outputs):
                    return [o for o in outputs if o.output_type in ('display_data', 'execute_result') and 'image/png' in o.data]
                if texts(a.outputs) != texts(b.outputs):
                    problems.append(f'{name}: printed {texts(b.outputs)[:300]!r}, saved {texts(a.outputs)[:300]!r}')
                elif texts(a.outputs):
                    counts['texts'] += 1
                if tables(a.outputs) != tables(b.outputs):
                    ta, tb = tables(a.outputs), tables(b.outputs)
                    detail = f'{tb[0][1]!r} vs saved {ta[0][1]!r}' if ta and tb else f'{len(tb)} tables, saved {len(ta)}'
                    problems.append(f'{name}: recomputed table differs: {detail}'[:1500])
                elif tables(a.outputs):
                    counts['tables'] += 1
                if pngs(a.outputs):
                    if pngs(b.outputs):
                        counts['plots'] += 1
                    else:
                        problems.append(f'{name}: no plot after execution')
            print(json.dumps({'problems': problems, **counts}))
            """
        let out = try PythonOracle.json(script, arguments: [notebook, scratch, String(timeout)]) as? [String: Any] ?? [:]
        return Comparison(problems: out["problems"] as? [String] ?? ["no comparison printed"],
                          tables: out["tables"] as? Int ?? 0, texts: out["texts"] as? Int ?? 0,
                          plots: out["plots"] as? Int ?? 0, codeCells: out["codeCells"] as? Int ?? 0)
    }
}
