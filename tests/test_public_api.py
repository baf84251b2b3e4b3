from __future__ import annotations

import bridge


def test_all_is_sorted_and_complete() -> None:
    assert list(bridge.__all__) == sorted(bridge.__all__)
    for name in bridge.__all__:
        assert hasattr(bridge, name), name
        assert not name.startswith("_") or name == "__version__"


def test_errors_form_one_hierarchy() -> None:
    assert issubclass(bridge.AppProtocolError, bridge.ProtocolError)
    assert issubclass(bridge.ServerProtocolError, bridge.ProtocolError)
    assert issubclass(bridge.ProtocolError, bridge.BridgeError)
    assert issubclass(bridge.LifespanStartupFailed, bridge.LifespanError)
    assert issubclass(bridge.ClientDisconnected, OSError)
    assert issubclass(bridge.ClientDisconnected, bridge.BridgeError)
    assert bridge.ServerProtocolError("x").status_hint == 400
    assert bridge.ServerProtocolError("x", status_hint=413).status_hint == 413
    assert bridge.AppProtocolError("x").status_hint == 500
