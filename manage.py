#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scimsync.settings")
    from django.core.management import execute_from_command_line

    from scimsync.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:  # a bad setting: its message names the variable; no traceback
        sys.exit(f"configuration error: {error}")


if __name__ == "__main__":
    main()
