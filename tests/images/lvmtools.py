"""lvm2 commands for the test-image scripts, run on image files on a host
that has no device mapper: metadata is written, LVs are never activated."""
import os, subprocess

LVM_CONFIG = ("activation { udev_sync=0 udev_rules=0 monitoring=0 } "
              "devices { obtain_device_list_from_udev=0 }")


def lvm(*args):
    """Runs an lvm2 command that needs no device mapper; its standard output."""
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    return subprocess.run(["lvm", *args, "--config", LVM_CONFIG], check=True, capture_output=True,
                          text=True, env=env).stdout
