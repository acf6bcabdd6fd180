// IEData: see DESIGN.md
