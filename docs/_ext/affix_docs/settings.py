"""The settings reference: every environment variable, from the metadata of the settings'
fields (:func:`affix.app.settings.setting`), in the order :class:`~affix.Settings` declares
them."""
import dataclasses
from typing import NamedTuple

from affix import Settings
from affix.app.sizes import SIZE_FORMS

from affix_docs.markdown import code, label


class Variable(NamedTuple):
    name: str
    # the attributes from Settings to the field: ("s3", "region")
    path: tuple
    form: str
    meaning: str
    unset: str


def _unset(field: dataclasses.Field) -> str:
    """What leaving the variable unset means, from the field's own default."""
    if "unset" in field.metadata:
        return field.metadata["unset"]
    default = field.default
    if default is None:
        return "none"
    if isinstance(default, bool):
        return code(int(default))
    if default == ():
        return "empty"
    return code(default)


def variables(options=Settings, path=()) -> list:
    """Every variable of ``options``' fields, and of the fields of its options' options."""
    found = []
    for field in dataclasses.fields(options):
        if dataclasses.is_dataclass(field.default):
            found += variables(type(field.default), path + (field.name,))
        elif "variable" in field.metadata:
            found.append(Variable(field.metadata["variable"], path + (field.name,),
                                  field.metadata["form"], field.metadata["meaning"],
                                  _unset(field)))
    return found


def reference() -> str:
    out = [f"A *size* is written in {SIZE_FORMS}.", ""]
    for variable in variables():
        out += [label(f"setting-{variable.name}"), f"## {code(variable.name)}", "",
                f"*{variable.form}*; unset: {variable.unset}", "",
                variable.meaning[0].upper() + variable.meaning[1:] + ".", ""]
    return "\n".join(out)
