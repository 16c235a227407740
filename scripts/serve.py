"""Same as `unet-serve`: all arguments are key=value (see configs/serve.yaml)."""

from unet.apps.serve import main

if __name__ == "__main__":
    main()
