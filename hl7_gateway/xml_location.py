"""XPath-ish locations for error reports, e.g. ``/MCCI_IN200100UV01/PRPA_IN402001UV02[2]/...``."""
from __future__ import annotations

from lxml import etree


def location(element: etree._Element, tail: str | None = None) -> str:
    """Path of local names from the root, with a 1-based index where siblings share a name.

    ``tail`` is appended as is (``@value`` for an attribute, ``low`` for a missing child).
    """
    parts = []
    node = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent if s.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    path = "/" + "/".join(reversed(parts))
    return f"{path}/{tail}" if tail else path
