"""Same as `unet-export`: all arguments are key=value (see configs/export.yaml)."""

from unet.apps.export import main

if __name__ == "__main__":
    main()
