import Foundation

/// The python of report.ipynb (SPEC §11): a setup cell defining helpers, then one call per table, plot or text
/// block that recomputes it with pandas and matplotlib from the run's files, by paths relative to the notebook's
/// folder. The tables are printed exactly as RunReport prints them (same statistics, sorting, `%.3f`, HTML and
/// plain text), so an executed notebook shows the tables it was saved with.
enum ReportNotebook {
    /// A python string literal: JSON's string syntax is a subset of python's.
    static func literal(_ s: String) -> String { jsonString(s) }

    static func literal(_ list: [String]) -> String { "[" + list.map { literal($0) }.joined(separator: ", ") + "]" }

    /// `path` relative to `folder` (both made absolute and standardized), "." for the folder itself.
    static func relativePath(from folder: String, to path: String) -> String {
        let a = URL(fileURLWithPath: folder).standardizedFileURL.pathComponents
        let b = URL(fileURLWithPath: path).standardizedFileURL.pathComponents
        var common = 0
        while common < min(a.count, b.count) && a[common] == b[common] { common += 1 }
        let parts = Array(repeating: "..", count: a.count - common) + b[common...]
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    /// The setup cell: `OUTPUTS` is the run's outputs folder relative to the notebook's folder. Prints one line.
    static func setup(outputs: String) -> (python: String, output: String) {
        let python = """
            # Recomputes this report from the run's files: run it from the folder holding report.ipynb.
            import json, math, re, warnings
            from pathlib import Path
            import numpy as np
            import pandas as pd
            import matplotlib.pyplot as plt
            from IPython.display import Image, display
            %matplotlib inline
            warnings.filterwarnings('ignore')

            OUTPUTS = Path(\(literal(outputs)))
            MAX_WORST = 20
            OUTLIER_RANGE = 3.0
            print(f'Run outputs: {OUTPUTS.as_posix()}')

            def fmt(v):
                if math.isnan(v):
                    return ''
                if math.isinf(v):
                    return 'inf' if v > 0 else '-inf'
                return f'{v:.3f}'

            def _escape(s):
                return s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')

            def show_table(header, rows):
                html = '<table>\\n<thead><tr>' + ''.join(f'<th>{_escape(h)}</th>' for h in header) + '</tr></thead>\\n<tbody>\\n'
                for row in rows:
                    html += '<tr>' + ''.join(f'<td>{_escape(v)}</td>' if re.fullmatch(r'-?(inf|[0-9]+(\\.[0-9]+)?)', v)
                                             else f'<td class="t">{_escape(v)}</td>' for v in row) + '</tr>\\n'
                html += '</tbody>\\n</table>\\n'
                table = [header] + rows
                widths = [max(len(r[c]) if c < len(r) else 0 for r in table) for c in range(len(header))]
                text = '\\n'.join('  '.join(v.ljust(widths[c]) if c == 0 else v.rjust(widths[c]) for c, v in enumerate(r))
                                 for r in table)
                display({'text/html': html, 'text/plain': text}, raw=True)

            def read_metrics(path):
                return pd.read_csv(OUTPUTS / path, dtype={'Patient': str, 'Structure': str, 'split': str, 'mode': str},
                                   keep_default_na=False, na_values=[''])

            def describe_table(path, metric):
                # pandas' describe per structure, sorted by mean (NaN last, ties by name).
                d = read_metrics(path).groupby('Structure')[metric].describe()
                d = d.sort_values('mean', kind='stable', na_position='last')
                show_table(['Structure', 'count', 'mean', 'std', 'min', '25%', '50%', '75%', 'max'],
                           [[s, str(int(r['count']))] + [fmt(r[k]) for k in ['mean', 'std', 'min', '25%', '50%', '75%', 'max']]
                            for s, r in d.iterrows()])

            def worst_table(path, metric, higher_is_better):
                # The worst rows; outliers lie OUTLIER_RANGE standard deviations from the mean over all rows.
                df = read_metrics(path)
                mean, sd = df[metric].mean(), df[metric].std()
                d = df[df[metric].notna()].sort_values([metric, 'Patient', 'Structure'], kind='stable',
                                                        ascending=[higher_is_better, True, True]).head(MAX_WORST)
                rows = []
                for _, r in d.iterrows():
                    v = r[metric]
                    outlier = v < mean - OUTLIER_RANGE * sd if higher_is_better else v > mean + OUTLIER_RANGE * sd
                    rows.append([r['Patient'], r['Structure'], fmt(v), 'True' if outlier else 'False'])
                show_table(['Patient', 'Structure', metric, 'is_outlier'], rows)

            def box_plot(df, column, categories, series, title, ylabel, xlabel=''):
                # One box per (category, series); categories along x; non-finite values left out.
                fig, ax = plt.subplots(figsize=(11, 6))
                width = 0.8 / max(len(series), 1)
                for s, (name, select) in enumerate(series):
                    data, positions = [], []
                    for c, category in enumerate(categories):
                        v = df.loc[select(df, category), column].to_numpy(dtype=float)
                        v = v[np.isfinite(v)]
                        if len(v):
                            data.append(v)
                            positions.append(c + 1 - 0.4 + width * (s + 0.5))
                    if data:
                        parts = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True)
                        for box in parts['boxes']:
                            box.set_facecolor(f'C{s % 10}')
                        parts['boxes'][0].set_label(name)
                ax.set_xticks(range(1, len(categories) + 1), categories)
                ax.set_xlim(0.4, len(categories) + 0.6)
                ax.set_title(title)
                ax.set_xlabel(xlabel)
                ax.set_ylabel(ylabel)
                ax.grid(axis='y')
                if len(series) > 1:
                    ax.legend(loc='upper left', bbox_to_anchor=(1, 1))
                plt.show()

            def structure_box_plot(path, metric, structures, title):
                box_plot(read_metrics(path), metric, structures,
                         [(metric, lambda df, s: df['Structure'] == s)], title, metric)

            def training_curve(column, title, ylabel):
                fig, ax = plt.subplots(figsize=(8, 4.5))
                for mode, colour in [('Train', '#1f77b4'), ('Val', '#d62728')]:
                    path = OUTPUTS / mode / 'epoch_metrics.csv'
                    if path.is_file():
                        df = pd.read_csv(path)
                        if 'epoch' in df and column in df:
                            d = df[['epoch', column]].apply(pd.to_numeric, errors='coerce')
                            d = d[np.isfinite(d['epoch']) & np.isfinite(d[column])]
                            ax.plot(d['epoch'], d[column], 'o-', ms=3, color=colour, label=mode)
                ax.set_title(title)
                ax.set_xlabel('epoch')
                ax.set_ylabel(ylabel)
                ax.grid()
                ax.legend()
                plt.show()

            def run_table(path, keys):
                info = json.loads((OUTPUTS / path).read_text())
                show_table(['field', 'value'], [[k, info[k]] for k in keys if isinstance(info.get(k), str)])

            def cross_validation_records(sources):
                # (split, mode, metrics.csv) of each fold, Dice in percent; or (None, None, MetricsAcrossAllRuns.csv).
                frames = []
                for split, mode, path in sources:
                    df = read_metrics(path)
                    if split is not None:
                        df['split'], df['mode'], df['Dice'] = split, mode, df['Dice'] * 100
                    frames.append(df)
                return pd.concat(frames, ignore_index=True)

            def split_order(splits):
                return sorted(set(splits), key=lambda s: (int(s) if re.fullmatch(r'[+-]?[0-9]+', s) else math.inf, s))

            def fold_table(sources, mode):
                df = cross_validation_records(sources)
                splits = split_order(df['split'].dropna())
                rows = df[df['mode'] == mode]
                show_table(['Structure'] + splits,
                           [[s] + [fmt(rows.loc[(rows['split'] == k) & (rows['Structure'] == s), 'Dice'].dropna().mean())
                                   for k in splits] for s in sorted(set(rows['Structure']))])

            def fold_box_plot(sources, mode, metric, structures, title, ylabel):
                df = cross_validation_records(sources)
                df = df[df['mode'] == mode]
                box_plot(df, metric, sorted(set(df['split'].dropna())),
                         [(s, lambda d, k, s=s: (d['split'] == k) & (d['Structure'] == s)) for s in structures],
                         title, ylabel, 'Cross-Validation Splits')

            def print_file(path):
                print((OUTPUTS / path).read_text(), end='')

            def show_png(path):
                display(Image(filename=str(OUTPUTS / path)))
            """
        return (python, "Run outputs: \(outputs)\n")
    }
}
