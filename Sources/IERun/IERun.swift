// IERun: see DESIGN.md
