"""Every exception class distillguard defines derives from the one root, DistillguardError (built-in bases kept)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import distillguard
from distillguard.errors import DistillguardError, location

NOT_CHECKED: tuple[str, ...] = ()  # every package is checked


def _modules(path: list[str], prefix: str):
    for info in pkgutil.iter_modules(path, prefix):
        if NOT_CHECKED and info.name.startswith(NOT_CHECKED):
            continue
        yield info.name
        if info.ispkg:
            yield from _modules([str(Path(path[0]) / info.name.rsplit(".", 1)[1])], info.name + ".")


def test_every_public_exception_class_derives_from_distillguard_error():
    unrooted = []
    for name in _modules(list(distillguard.__path__), "distillguard."):
        module = importlib.import_module(name)
        for cls_name, cls in vars(module).items():
            if (inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name
                    and not cls_name.startswith("_") and not issubclass(cls, DistillguardError)):
                unrooted.append(f"{name}.{cls_name}")
    assert not unrooted, f"exception classes outside DistillguardError: {unrooted}"


def test_policy_errors_are_located():
    from distillguard.gateway.policy import PolicyError, parse_policy

    try:
        parse_policy("tiers:\n  - {name: a, verdict: allow, action: nuke}\n", "p.yaml")
    except PolicyError as exc:
        assert (exc.source, exc.line, exc.field) == ("p.yaml", 2, "tiers[0].action")
        assert location(exc) == "p.yaml:2: tiers[0].action"
    else:
        raise AssertionError("an unknown action must be refused")


def test_resistance_errors_are_rooted_and_located():
    from distillguard.resist.directive import DirectiveError, EngineDirective
    from distillguard.resist.keys import KeyError_, parse_keyring
    from distillguard.resist.profile import ProfileError, parse_profile

    try:
        parse_profile("distillguard_resistance: 1\ntiers:\n  watch: {antidistillation: -1}\n", "r.yaml")
    except ProfileError as exc:
        assert isinstance(exc, DistillguardError) and isinstance(exc, ValueError)
        assert (exc.source, exc.line, exc.field) == ("r.yaml", 3, "tiers.watch.antidistillation")
        assert location(exc) == "r.yaml:3: tiers.watch.antidistillation"
    else:
        raise AssertionError("a negative strength must be refused")
    for call, error in ((lambda: parse_keyring({"keys": []}, "k.yaml"), KeyError_),
                        (lambda: EngineDirective.decode("v=9"), DirectiveError)):
        try:
            call()
        except DistillguardError as exc:
            assert isinstance(exc, error) and isinstance(exc, ValueError)
        else:
            raise AssertionError(f"{error.__name__} expected")
