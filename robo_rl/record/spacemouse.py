"""source=spacemouse: a 3Dconnexion SpaceMouse read through hidapi (``pip install 'robo_rl[teleop]'``,
import name ``hid``, imported only when this source is used).

HID reports (little-endian int16 per axis, roughly +-350 at full deflection):
    id 1: translation x, y, z             (7 bytes; some models send 13: x, y, z, rx, ry, rz)
    id 2: rotation rx, ry, rz             (7 bytes)
    id 3: buttons, one bit per button     (bit 0 left, bit 1 right)
The device reports only changes, so the last value of each axis holds until the next report.
A device axis i becomes robot axis j where ``axis_map[j] == i``, times ``axis_signs[j]``; the
default signs turn the HID frame (y towards the user, z down) into a right-handed z-up one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robo_rl.record.teleop import GRIPPER_CLOSED, GRIPPER_OPEN, SIX_DOF, TRANSLATION_AXES, TeleopError

TRANSLATION_REPORT, ROTATION_REPORT, BUTTON_REPORT = 1, 2, 3
INT16_BYTES = 2
AXES_PER_REPORT = 3
SIX_AXIS_REPORT_BYTES = 1 + SIX_DOF * INT16_BYTES        # 13: id + six int16
REPORT_BYTES = 64                                         # largest HID report read at once
MAX_REPORTS_PER_POLL = 256                                # drain bound: a device never floods a tick
CLOSE_BUTTON_BIT, OPEN_BUTTON_BIT = 0, 1
# 3Dconnexion's own vendor id, and Logitech's (older SpaceNavigator / SpaceMouse models).
SPACEMOUSE_VENDOR_IDS = (0x256F, 0x046D)
PRODUCT_NAME_HINT = "space"   # Logitech makes other HID devices: their 3Dconnexion names contain it

INSTALL_HINT = "pip install 'robo_rl[teleop]' (the hidapi package)"
UDEV_HINT = ("allow your user to open it: echo 'KERNEL==\"hidraw*\", ATTRS{idVendor}==\"256f\", MODE=\"0660\", "
             "TAG+=\"uaccess\"' | sudo tee /etc/udev/rules.d/99-spacemouse.rules && sudo udevadm control "
             "--reload-rules && sudo udevadm trigger (use 046d for Logitech-branded models), then replug it")


@dataclass
class SpaceMouseConfig:
    """source=spacemouse."""
    full_scale: float = 350.0     # raw HID count that gives |action| = 1 (SpaceMouse axes reach about +-350)
    deadzone: float = 0.1         # share of full scale read as 0 (the puck never rests exactly at 0)
    axis_map: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4, 5])  # robot axis j <- device axis
    axis_signs: list[float] = field(default_factory=lambda: [1.0, -1.0, -1.0, 1.0, -1.0, -1.0])
    vendor_id: int | None = None  # null: the first HID device of 3Dconnexion (0x256f) or a Logitech SpaceMouse
    product_id: int | None = None

    def problems(self) -> list[str]:
        found = []
        if not self.full_scale > 0:
            found.append(f"spacemouse.full_scale must be > 0 (got {self.full_scale})")
        if not 0.0 <= self.deadzone < 1.0:
            found.append(f"spacemouse.deadzone must be in [0, 1) (a share of full scale; got {self.deadzone})")
        if sorted(self.axis_map) != list(range(SIX_DOF)):
            found.append(f"spacemouse.axis_map must be a permutation of 0..5 (got {list(self.axis_map)})")
        if len(self.axis_signs) != SIX_DOF or any(sign not in (-1.0, 1.0) for sign in self.axis_signs):
            found.append(f"spacemouse.axis_signs must be six entries of 1 or -1 (got {list(self.axis_signs)})")
        return found


def parse_report(data) -> tuple[dict[int, int], int | None]:
    """({device axis: raw int16 value}, buttons bitmask or None) of one HID report (a list of ints
    or bytes, report id first). Unknown report ids give nothing."""
    data = bytes(data)
    if not data:
        return {}, None
    report_id, payload = data[0], data[1:]
    if report_id == BUTTON_REPORT:
        return {}, int.from_bytes(payload, "little")
    if report_id == TRANSLATION_REPORT:
        first = 0
        count = SIX_DOF if len(data) >= SIX_AXIS_REPORT_BYTES else AXES_PER_REPORT
    elif report_id == ROTATION_REPORT:
        first, count = TRANSLATION_AXES, AXES_PER_REPORT
    else:
        return {}, None
    count = min(count, len(payload) // INT16_BYTES)
    values = np.frombuffer(payload[:count * INT16_BYTES], "<i2")
    return {first + i: int(value) for i, value in enumerate(values)}, None


class SpaceMouse:
    """The newest state of a SpaceMouse as a 6-DoF command; ``device`` is an open hidapi device
    (or anything with ``read(size) -> list[int]`` that returns an empty list when nothing is queued)."""

    def __init__(self, device, cfg: SpaceMouseConfig):
        self.device, self.cfg = device, cfg
        self.raw = np.zeros(SIX_DOF)
        self.buttons = 0

    def poll(self) -> None:
        """Apply every report queued since the last poll."""
        for _ in range(MAX_REPORTS_PER_POLL):
            data = self.device.read(REPORT_BYTES)
            if not data:
                return
            axes, buttons = parse_report(data)
            for axis, value in axes.items():
                self.raw[axis] = value
            if buttons is not None:
                self.buttons = buttons

    def six_dof(self) -> np.ndarray:
        scaled = np.clip(self.raw / self.cfg.full_scale, -1.0, 1.0)
        scaled[np.abs(scaled) < self.cfg.deadzone] = 0.0
        return scaled[list(self.cfg.axis_map)] * np.asarray(self.cfg.axis_signs, float)

    def gripper(self) -> float | None:
        """Left button closes, right button opens; None (keep the last command) otherwise."""
        if self.buttons >> CLOSE_BUTTON_BIT & 1:
            return GRIPPER_CLOSED
        if self.buttons >> OPEN_BUTTON_BIT & 1:
            return GRIPPER_OPEN
        return None

    def read(self) -> tuple[np.ndarray, float | None]:
        self.poll()
        return self.six_dof(), self.gripper()

    def close(self) -> None:
        close = getattr(self.device, "close", None)
        if close is not None:
            close()


def open_spacemouse(cfg: SpaceMouseConfig) -> SpaceMouse:
    """The first matching SpaceMouse, opened non-blocking, or a TeleopError saying what to do."""
    try:
        import hid
    except ImportError as error:
        raise TeleopError(f"source=spacemouse needs hidapi: {INSTALL_HINT} (import failed: {error})") from None
    if not hasattr(hid, "enumerate") or not hasattr(hid, "device"):
        raise TeleopError(f"the `hid` module found is not hidapi's (another package named hid?): "
                          f"pip uninstall hid, then {INSTALL_HINT}")
    candidates = []
    for info in hid.enumerate():
        vendor, product = int(info.get("vendor_id", 0)), int(info.get("product_id", 0))
        name = str(info.get("product_string") or "")
        if cfg.vendor_id is not None:
            match = vendor == cfg.vendor_id and (cfg.product_id is None or product == cfg.product_id)
        else:
            match = vendor == SPACEMOUSE_VENDOR_IDS[0] or (
                vendor in SPACEMOUSE_VENDOR_IDS and PRODUCT_NAME_HINT in name.lower())
        if match:
            candidates.append(info)
    if not candidates:
        wanted = (f"vendor 0x{cfg.vendor_id:04x}" if cfg.vendor_id is not None else
                  "vendor 0x256f (3Dconnexion) or a Logitech SpaceMouse")
        raise TeleopError(f"no SpaceMouse found among the HID devices ({wanted}); plug it in (a wireless one: "
                          f"its receiver), or set spacemouse.vendor_id/product_id (see `lsusb`). If it is "
                          f"plugged in, this user may not see it: {UDEV_HINT}")
    info = candidates[0]
    device = hid.device()
    try:
        device.open_path(info["path"])
    except (OSError, IOError) as error:
        path = info["path"].decode(errors="replace") if isinstance(info["path"], bytes) else info["path"]
        raise TeleopError(f"cannot open the SpaceMouse {info.get('product_string')!r} at {path} ({error}); "
                          f"{UDEV_HINT}") from None
    device.set_nonblocking(1)
    return SpaceMouse(device, cfg)
