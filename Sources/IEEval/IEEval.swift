// IEEval: see DESIGN.md
