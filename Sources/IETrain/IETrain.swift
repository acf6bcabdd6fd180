// IETrain: see DESIGN.md
