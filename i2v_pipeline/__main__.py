try:  # `python -m i2v_pipeline`: the import is guarded in cli/__init__.py, not this line
    from .cli import main
except KeyboardInterrupt:  # pragma: no cover - between the two guards
    import sys

    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

main()
