"""Teleoperation pieces of `robo-rl record`: an arm task's action layout,
terminal keys (cbreak mode, non-blocking), the keyboard source, and the wrapper that turns any
6-DoF motion device (SpaceMouse, ROS 2 topic) plus the terminal's episode keys into commands.

Every teleop source yields one ``TeleopCommand`` per env step: the action (each entry in [-1, 1],
laid out as the task's action space: translation xyz, rotation xyz if ``rotation_action``, the
stiffness entry if ``variable_impedance``, the gripper if ``gripper_action``) and an optional
episode event (end, discard, quit).
"""
from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

END, DISCARD, QUIT = "end", "discard", "quit"
EVENT_PRIORITY = (QUIT, DISCARD, END)   # several in one tick: the strongest wins

TRANSLATION_AXES = 3
ROTATION_AXES = 3
SIX_DOF = TRANSLATION_AXES + ROTATION_AXES

# The episode keys every teleop source reads from the terminal (when stdin is one).
END_KEYS = (b"\r", b"\n")
DISCARD_KEYS = (b"x", b"\x7f", b"\x08")   # x, Backspace (DEL or ^H, by terminal)
QUIT_KEYS = (b"q",)
CTRL_C = b"\x03"                          # only arrives as a byte if the terminal is in raw mode
# source=keyboard: motion keys -> (axis of the 6-DoF command, sign); axes 0-2 translation x, y, z,
# 3-5 rotation about x, y, z. Held keys repeat at the terminal's auto-repeat rate.
MOTION_KEYS = {
    b"w": (0, 1.0), b"s": (0, -1.0),
    b"a": (1, 1.0), b"d": (1, -1.0),
    b"r": (2, 1.0), b"f": (2, -1.0),
    b"i": (3, 1.0), b"k": (3, -1.0),
    b"j": (4, 1.0), b"l": (4, -1.0),
    b"u": (5, 1.0), b"o": (5, -1.0),
}
STOP_KEY = b" "
GRIPPER_CLOSE_KEY, GRIPPER_OPEN_KEY = b"c", b"v"
GRIPPER_CLOSED, GRIPPER_OPEN = -1.0, 1.0

KEY_HELP = ("keys: w/s +x/-x  a/d +y/-y  r/f +z/-z  [i/k j/l u/o rotation about x/y/z]  [c/v gripper "
            "close/open]  space stop  Enter end episode  x/Backspace discard episode  q quit")
EPISODE_KEY_HELP = "keys: Enter end episode  x/Backspace discard episode  q quit"


class TeleopError(ValueError):
    """A teleop device or package is missing or unusable; the message says how to fix it."""


@dataclass
class TeleopCommand:
    action: np.ndarray
    event: str | None = None


@dataclass(frozen=True)
class ActionLayout:
    """Where translation, rotation, stiffness and gripper sit in an arm task's action vector."""
    size: int
    rotation: bool = False
    stiffness: int | None = None
    gripper: int | None = None

    @classmethod
    def of_task(cls, task_env) -> "ActionLayout":
        """The layout robo_rl.tasks' ArmTask.apply_action reads (xyz, [rotation], [stiffness], [gripper])."""
        config = task_env.config
        index = TRANSLATION_AXES + ROTATION_AXES * bool(config.rotation_action)
        stiffness = gripper = None
        if config.variable_impedance:
            stiffness, index = index, index + 1
        if config.gripper_action:
            gripper = index
        return cls(int(task_env.action_space.shape[0]), bool(config.rotation_action), stiffness, gripper)

    def assemble(self, six_dof: np.ndarray, gripper: float, stiffness: float) -> np.ndarray:
        """The action of a 6-DoF command (rotation dropped unless the task takes it), clipped to [-1, 1]."""
        action = np.zeros(self.size, np.float32)
        action[:TRANSLATION_AXES] = six_dof[:TRANSLATION_AXES]
        if self.rotation:
            action[TRANSLATION_AXES:SIX_DOF] = six_dof[TRANSLATION_AXES:SIX_DOF]
        if self.stiffness is not None:
            action[self.stiffness] = stiffness
        if self.gripper is not None:
            action[self.gripper] = gripper
        return np.clip(action, -1.0, 1.0)


class KeyReader(Protocol):
    def read(self) -> bytes:
        """The bytes that arrived since the last call (b"" if none); never blocks."""


class TerminalKeys:
    """Key presses from a terminal file descriptor in cbreak mode (no line buffering, no echo;
    Ctrl-C still interrupts), restored on close. Reads without blocking."""

    READ_SIZE = 1024  # bytes per os.read; a tick's key presses are a handful

    def __init__(self, fd: int | None = None):
        import termios
        import tty

        self.fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(self.fd):
            raise TeleopError("source=keyboard reads keys from a terminal, but stdin is not one; run "
                              "robo-rl record in an interactive terminal (not piped or in the background)")
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    def read(self) -> bytes:
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, self.READ_SIZE)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def close(self) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def __enter__(self) -> "TerminalKeys":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def episode_event(keys: bytes) -> str | None:
    """The strongest episode event among ``keys`` (quit > discard > end), or None."""
    if CTRL_C in keys:
        raise KeyboardInterrupt
    found = set()
    for key in (keys[i:i + 1] for i in range(len(keys))):
        if key in QUIT_KEYS:
            found.add(QUIT)
        elif key in DISCARD_KEYS:
            found.add(DISCARD)
        elif key in END_KEYS:
            found.add(END)
    return next((event for event in EVENT_PRIORITY if event in found), None)


@dataclass
class KeyboardConfig:
    """source=keyboard."""
    speed: float = 1.0       # |action| of a pressed axis (actions are in [-1, 1])
    # A key press drives its axis for this many steps (or until the opposite key or space): a
    # terminal sends no key-up, and its auto-repeat starts only after ~0.25-0.6 s.
    hold_steps: int = 5


class KeyboardTeleop:
    """source=keyboard: motion keys (MOTION_KEYS), space stops, c/v gripper, Enter/x/q episode keys."""

    def __init__(self, keys: KeyReader, layout: ActionLayout, cfg: KeyboardConfig, stiffness: float,
                 gripper_start: float):
        self.keys, self.layout, self.cfg = keys, layout, cfg
        self.stiffness, self.gripper_start = stiffness, gripper_start
        self.help = KEY_HELP
        self._clear()

    def _clear(self) -> None:
        self.direction = np.zeros(SIX_DOF)
        self.steps_left = np.zeros(SIX_DOF, int)
        self.gripper = self.gripper_start

    def begin_episode(self) -> None:
        self._clear()
        self.keys.read()  # key presses made between episodes do not move the new one

    def command(self) -> TeleopCommand:
        keys = self.keys.read()
        event = episode_event(keys)
        for key in (keys[i:i + 1] for i in range(len(keys))):
            if key in MOTION_KEYS:
                axis, sign = MOTION_KEYS[key]
                self.direction[axis], self.steps_left[axis] = sign, self.cfg.hold_steps
            elif key == STOP_KEY:
                self.steps_left[:] = 0
            elif key == GRIPPER_CLOSE_KEY:
                self.gripper = GRIPPER_CLOSED
            elif key == GRIPPER_OPEN_KEY:
                self.gripper = GRIPPER_OPEN
        six_dof = np.where(self.steps_left > 0, self.direction * self.cfg.speed, 0.0)
        self.steps_left = np.maximum(self.steps_left - 1, 0)
        return TeleopCommand(self.layout.assemble(six_dof, self.gripper, self.stiffness), event)

    def close(self) -> None:
        pass


class MotionDevice(Protocol):
    def read(self) -> tuple[np.ndarray, float | None]:
        """(6-DoF command in [-1, 1]: translation xyz, rotation xyz; gripper command or None = keep)."""

    def close(self) -> None: ...


@dataclass
class DeviceTeleop:
    """A 6-DoF motion device (SpaceMouse, ROS 2 topic) plus the terminal's episode keys, if any."""
    device: MotionDevice
    layout: ActionLayout
    keys: KeyReader | None
    stiffness: float
    gripper_start: float
    help: str = field(default=EPISODE_KEY_HELP)

    def __post_init__(self) -> None:
        self.gripper = self.gripper_start

    def begin_episode(self) -> None:
        self.gripper = self.gripper_start
        if self.keys is not None:
            self.keys.read()

    def command(self) -> TeleopCommand:
        event = episode_event(self.keys.read()) if self.keys is not None else None
        six_dof, gripper = self.device.read()
        if gripper is not None:
            self.gripper = gripper
        return TeleopCommand(self.layout.assemble(np.asarray(six_dof, float), self.gripper, self.stiffness), event)

    def close(self) -> None:
        self.device.close()
