"""Command-line verbs. Each module defines `register(subparsers)` adding its verb with a handler
`args.func(args) -> int`; `synface.cli.main` lists the modules."""
