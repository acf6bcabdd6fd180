// IEConfig: see DESIGN.md
