"""factory_boy factories for the domain; each builds a valid object with the fewest required choices."""

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from handover.choices import HandoverStatus, Risk, Side, TemplateKind
from handover.models import ChecklistItem, ChecklistTemplate, Handover, TemplateItem
from handover.readiness import recount
from operations.models import Kpi, OperationsTeam, Service
from projects.models import Project


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("pw-for-tests-1")


class AdminFactory(UserFactory):
    is_staff = True
    is_superuser = True


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OperationsTeam
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Service desk {n}")
    lead = factory.SubFactory(UserFactory)

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        if create and extracted:
            self.members.add(*extracted)


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"Service {n}")


class KpiFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Kpi

    service = factory.SubFactory(ServiceFactory)
    name = factory.Sequence(lambda n: f"KPI {n}")
    unit = "%"
    target = 80
    baseline = 20


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"PRJ-{n:04d}")
    name = factory.Faker("catch_phrase")
    manager = factory.SubFactory(UserFactory)
    receiving_team = factory.SubFactory(TeamFactory)
    planned_handover = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=60))

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        if create and extracted:
            self.members.add(*extracted)


class TemplateFactory(factory.django.DjangoModelFactory):
    """A small template: per risk one mandatory project-side item and one mandatory operations-side item, plus one
    optional item."""

    class Meta:
        model = ChecklistTemplate
        skip_postgeneration_save = True

    kind = TemplateKind.SOFTWARE_ROLLOUT
    name = factory.Sequence(lambda n: f"Template {n}")

    @factory.post_generation
    def with_items(self, create, extracted, **kwargs):
        if not create or extracted is False:
            return
        position = 0
        for risk in Risk:
            for side in Side:
                position += 1
                TemplateItem.objects.create(
                    template=self,
                    key=f"{risk}-{side}",
                    title=f"{risk.label}: {side.label} item",
                    risk=risk,
                    side=side,
                    position=position,
                )
        TemplateItem.objects.create(
            template=self, key="optional", title="Nice to have", risk=Risk.ADOPTION, mandatory=False, position=99
        )


class HandoverFactory(factory.django.DjangoModelFactory):
    """A bare handover row; prefer ``handover.services.handover_create`` in tests of behaviour."""

    class Meta:
        model = Handover

    project = factory.SubFactory(ProjectFactory)
    receiving_team = factory.SelfAttribute("project.receiving_team")
    operations_owner = factory.SelfAttribute("receiving_team.lead")
    target_date = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=30))
    status = HandoverStatus.PREPARING
    status_changed_at = factory.LazyFunction(timezone.now)
    last_activity_at = factory.LazyFunction(timezone.now)
    created_at = factory.LazyFunction(timezone.now)


class ChecklistItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChecklistItem

    handover = factory.SubFactory(HandoverFactory)
    title = factory.Sequence(lambda n: f"Item {n}")
    risk = Risk.FAILURE
    side = Side.PROJECT

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        """An item built in a given state bypasses the services; keep its handover's stored readiness true."""
        super()._after_postgeneration(instance, create, results)
        if create:
            recount([instance.handover_id])
