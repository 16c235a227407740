"""Same as `unet-predict`: all arguments are key=value (see configs/predict.yaml)."""

from unet.apps.predict import main

if __name__ == "__main__":
    main()
