// IEReport: see DESIGN.md
