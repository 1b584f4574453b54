"""The plugin machinery: hook specifications (`hookspecs`), the manager that finds, loads and isolates
plugins and sets who keeps a contested name (`manager`), the name tables it fills (`registry`), and
the two plugins that ship inside the core: the built-in layers and datasets.

Importing this package imports pluggy; `import minicnn` does not, until a name from here is used.
"""
