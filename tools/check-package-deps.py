#!/usr/bin/env python3
"""Package.swift's declared dependencies must equal each target's imports (DESIGN.md: "Package.swift's
dependencies equal the imports"). Prints one line per mismatch and exits 1 if there is any.
Usage: tools/check-package-deps.py [REPO]"""
import os, re, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
package = open(os.path.join(root, 'Package.swift')).read()
variables = {name: set(re.findall(r'"([A-Za-z_][\w-]*)"', body))
             for name, body in re.findall(r'let (\w+): \[Target\.Dependency\] = (.*)', package)}
system = set(re.findall(r'systemLibrary\(name: "(\w+)"', package)) | {'CDNNL', 'CMPI'}
# Swift modules only (python scripts inside test strings also say "import numpy").
modules = system | set(re.findall(r'(?:target|Target)\(name: "([\w-]+)"', package)) | {'ArgumentParser', 'Yams'}
problems = []
for match in re.finditer(r'\.(target|executableTarget|testTarget)\(name: "([\w-]+)", dependencies: (.*?)(?:,\s*path: "([^"]+)")?(?:, exclude|,\s*swiftSettings|\)(?:,|\s*\]))',
                         package, re.S):
    kind, name, deps_text, path = match.groups()
    declared = set(re.findall(r'"([A-Za-z_][\w-]*)"', re.sub(r'package: "[^"]+"', '', deps_text)))
    for variable, names in variables.items():
        if re.search(r'\b%s\b' % variable, deps_text):
            declared |= names
    folder = path or os.path.join('Tests' if kind == 'testTarget' else 'Sources', name)
    imports = set()
    for directory, _, files in os.walk(os.path.join(root, folder)):
        if 'Fixtures' in directory:
            continue
        for f in files:
            if f.endswith('.swift'):
                imports |= set(re.findall(r'^(?:@testable )?import (\w+)', open(os.path.join(directory, f)).read(), re.M))
    imports &= modules
    for missing in sorted(imports - declared):
        problems.append(f'{name}: imports {missing} but does not declare it')
    for unused in sorted(declared - imports):
        problems.append(f'{name}: declares {unused} but does not import it')
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
