"""The registries: natural name order, patterns, duplicates refused, unknown names with suggestions."""

import pytest

import minicnn as mc
from minicnn.plugin.registry import Entry, Registry, RegistryError, natural_key


def registry_of(*names: str) -> Registry:
    registry = Registry("model")
    for name in names:
        registry.add(Entry("model", name, dict, "tests"))
    return registry


def test_names_sort_naturally_numbers_by_value_letters_ignoring_case():
    registry = registry_of("resnet101", "vgg16", "resnet18", "ResNet9", "resnet50", "vgg11", "resnet34", "alexnet")
    assert registry.names() == ["alexnet", "ResNet9", "resnet18", "resnet34", "resnet50", "resnet101", "vgg11", "vgg16"]
    assert registry.names("resnet*") == ["ResNet9", "resnet18", "resnet34", "resnet50", "resnet101"]


def test_names_that_differ_only_in_case_or_leading_zeros_keep_a_fixed_order():
    assert sorted(["b2", "B2", "b02", "a10", "a9b"], key=natural_key) == ["a9b", "a10", "B2", "b02", "b2"]


def test_the_unknown_name_error_lists_the_names_in_natural_order():
    with pytest.raises(RegistryError, match=r"unknown model 'resnet5'; did you mean .*\(registered: resnet18, resnet50, "
                                            r"resnet101\)"):
        registry_of("resnet101", "resnet50", "resnet18").get("resnet5")


def test_a_second_provider_of_a_name_is_refused():
    registry = registry_of("tiny")
    with pytest.raises(RegistryError, match="model 'tiny' from plugin 'other' is refused: plugin 'tests' already"):
        registry.add(Entry("model", "tiny", dict, "other"))


def test_list_models_sorts_the_shipped_families_naturally():
    names = mc.list_models()
    resnets = [name for name in names if name in ("resnet18", "resnet34", "resnet50", "resnet101")]
    assert resnets == ["resnet18", "resnet34", "resnet50", "resnet101"]
    assert names.index("vgg11") < names.index("vgg16")
    assert names == sorted(names, key=natural_key)
