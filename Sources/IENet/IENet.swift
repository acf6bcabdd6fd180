// IENet: see DESIGN.md
