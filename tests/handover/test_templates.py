import dataclasses
import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from handover import checklists
from handover import services as hs
from handover.choices import Risk, TemplateKind
from handover.models import ChecklistItem, ChecklistTemplate, Handover, TemplateItem


def _load_templates() -> list[str]:
    out = StringIO()
    call_command("load_templates", stdout=out)
    return out.getvalue().splitlines()


def _installed(definition: checklists.TemplateDefinition) -> ChecklistTemplate:
    return ChecklistTemplate.objects.get(name=definition.name, is_active=True)


def _create_handover(project, template, owner, manager) -> Handover:
    return hs.handover_create(
        project=project,
        template=template,
        operations_owner=owner,
        target_date=timezone.localdate() + dt.timedelta(days=30),
        by=manager,
    )


def test_one_default_template_per_project_kind():
    kinds = [d.kind for d in checklists.DEFAULT_TEMPLATES]
    assert sorted(kinds) == sorted(set(TemplateKind) - {TemplateKind.CUSTOM})


@pytest.mark.parametrize("definition", checklists.DEFAULT_TEMPLATES, ids=lambda d: d.kind)
def test_default_template_has_at_least_eight_items_per_risk(definition):
    per_risk = {risk: sum(1 for item in definition.items if item.risk == risk) for risk in Risk}
    assert all(count >= 8 for count in per_risk.values()), per_risk


@pytest.mark.parametrize("definition", checklists.DEFAULT_TEMPLATES, ids=lambda d: d.kind)
def test_default_template_item_keys_are_unique(definition):
    keys = [item.key for item in definition.items]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("definition", checklists.DEFAULT_TEMPLATES, ids=lambda d: d.kind)
def test_default_template_items_have_guidance_and_some_are_optional(definition):
    assert all(item.guidance.strip() for item in definition.items)
    assert any(not item.mandatory for item in definition.items)
    assert sum(item.mandatory for item in definition.items) > len(definition.items) // 2


@pytest.mark.django_db
def test_load_templates_creates_every_default_template_with_its_counts():
    lines = _load_templates()

    assert len(lines) == len(checklists.DEFAULT_TEMPLATES)
    for line, definition in zip(lines, checklists.DEFAULT_TEMPLATES, strict=True):
        counts = ", ".join(f"{risk} {sum(i.risk == risk for i in definition.items)}" for risk in Risk.values)
        assert line == f"{definition.name}: created ({counts})"
        template = _installed(definition)
        assert (template.kind, template.version) == (definition.kind, 1)
        assert list(template.items.values_list("key", flat=True)) == [i.key for i in definition.items]


@pytest.mark.django_db
def test_load_templates_second_run_writes_nothing_and_says_unchanged():
    _load_templates()
    counts = (ChecklistTemplate.objects.count(), TemplateItem.objects.count())
    updated_at = list(ChecklistTemplate.objects.order_by("pk").values_list("updated_at", flat=True))

    lines = _load_templates()

    assert (ChecklistTemplate.objects.count(), TemplateItem.objects.count()) == counts
    assert list(ChecklistTemplate.objects.order_by("pk").values_list("updated_at", flat=True)) == updated_at
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines] == ["unchanged at v1"] * len(lines)


@pytest.mark.django_db
def test_changed_definition_makes_new_version_and_leaves_existing_handover_alone(
    monkeypatch, planning_project, owner, manager
):
    """GIVEN a handover built from v1 of the software roll-out template
    WHEN one item of the definition is reworded and load_templates runs again
    THEN v2 is created with the new wording, v1 is deactivated, and the handover keeps v1 and its items.
    """
    _load_templates()
    v1 = _installed(checklists.SOFTWARE_ROLLOUT)
    handover = _create_handover(planning_project, v1, owner, manager)
    items_before = list(handover.items.values_list("pk", "title", "guidance", "template_item_id"))

    reworded = dataclasses.replace(checklists.SOFTWARE_ROLLOUT.items[0], title="Service owner named")
    modified = dataclasses.replace(
        checklists.SOFTWARE_ROLLOUT, items=(reworded, *checklists.SOFTWARE_ROLLOUT.items[1:])
    )
    monkeypatch.setattr(
        checklists,
        "DEFAULT_TEMPLATES",
        [modified if d is checklists.SOFTWARE_ROLLOUT else d for d in checklists.DEFAULT_TEMPLATES],
    )
    lines = _load_templates()

    assert lines[0].startswith("Software roll-out: updated to v2 (")
    assert all(": unchanged at v1 (" in line for line in lines[1:])
    v1.refresh_from_db()
    v2 = _installed(checklists.SOFTWARE_ROLLOUT)
    assert (v1.is_active, v2.version) == (False, 2)
    assert v2.items.get(key=reworded.key).title == "Service owner named"
    assert v1.items.get(key=reworded.key).title == checklists.SOFTWARE_ROLLOUT.items[0].title
    handover.refresh_from_db()
    assert (handover.template_id, handover.template_version) == (v1.pk, 1)
    assert list(handover.items.values_list("pk", "title", "guidance", "template_item_id")) == items_before


@pytest.mark.django_db
@pytest.mark.parametrize("definition", checklists.DEFAULT_TEMPLATES, ids=lambda d: d.kind)
def test_handover_from_default_template_copies_every_item(definition, planning_project, owner, manager):
    checklists.install_default_templates()
    template = _installed(definition)

    handover = _create_handover(planning_project, template, owner, manager)

    fields = ("title", "guidance", "risk", "side", "mandatory")
    copied = list(handover.items.order_by("position").values_list(*fields))
    assert copied == [tuple(getattr(spec, f) for f in fields) for spec in definition.items]
    assert set(handover.items.values_list("template_item_id", flat=True)) == set(
        template.items.values_list("pk", flat=True)
    )
    assert ChecklistItem.objects.filter(handover=handover).count() == len(definition.items)


@pytest.mark.django_db
def test_load_templates_refuses_a_bad_definition_and_installs_none(monkeypatch):
    broken = dataclasses.replace(
        checklists.PROCESS_REDESIGN, items=(*checklists.PROCESS_REDESIGN.items, checklists.KNOWLEDGE_TRANSFER)
    )
    monkeypatch.setattr(checklists, "DEFAULT_TEMPLATES", [*checklists.DEFAULT_TEMPLATES[:-1], broken])

    with pytest.raises(CommandError, match="repeats an item key"):
        _load_templates()

    assert not ChecklistTemplate.objects.exists()
