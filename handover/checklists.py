"""The default checklist templates, one per kind of project (docs/domain.md "Checklist items").

This module is data: each template lists its items per risk, drawn from the domain's pool and tailored to the kind
of project. Items whose wording is the same for several kinds are defined once below and shared. A definition's
``key`` is its identity: keep it stable when a title or guidance is reworded. ``handover.services.template_install``
does the writing; changing anything here and running ``manage.py load_templates`` makes a new template version.
"""

from dataclasses import dataclass

from django.db import transaction

from .choices import Risk, Side, TemplateKind
from .models import ChecklistTemplate
from .services import TemplateItemSpec, template_install

INEFFICIENCY, FAILURE, ADOPTION = Risk.INEFFICIENCY, Risk.FAILURE, Risk.ADOPTION
PROJECT, OPERATIONS = Side.PROJECT, Side.OPERATIONS


@dataclass(frozen=True)
class TemplateDefinition:
    """One default template as installed by ``install_default_templates``."""

    kind: str
    name: str
    description: str
    items: tuple[TemplateItemSpec, ...]


# ------------------------------------------------------------------------------------------- shared items

OWNER_AND_SUPPORT_TIERS = TemplateItemSpec(
    key="operations-owner-and-support-tiers",
    title="Operations owner and support tiers agreed",
    guidance="A named operations owner and a written support model (who handles first, second and third line, in "
    "and out of hours, including vendors), signed off by the receiving team's lead.",
    risk=INEFFICIENCY,
    side=OPERATIONS,
)
SLAS_MEASURABLE = TemplateItemSpec(
    key="slas-agreed-and-measurable",
    title="SLAs and OLAs agreed and measurable",
    guidance="Availability, response and resolution targets are written down, agreed by operations and the "
    "customer, and can be reported from data that already exists rather than counted by hand.",
    risk=INEFFICIENCY,
    side=OPERATIONS,
)
KNOWLEDGE_TRANSFER = TemplateItemSpec(
    key="knowledge-transfer",
    title="Knowledge transfer held with attendance recorded",
    guidance="Sessions run by the people who built it for the people who will run it; the attendance list and the "
    "slides or recordings are linked, and absentees have a catch-up date.",
    risk=INEFFICIENCY,
    side=PROJECT,
)
OPEN_ISSUES = TemplateItemSpec(
    key="open-issues-and-residual-risks",
    title="Open issues and residual risks listed with owners",
    guidance="One list of known defects, snags and residual risks, each with an owner in operations or the project "
    "and a due date, reviewed with the operations owner.",
    risk=INEFFICIENCY,
    side=PROJECT,
)
CHANGE_PROCESS = TemplateItemSpec(
    key="change-process-after-go-live",
    title="Change process after go-live agreed",
    guidance="How changes are requested, approved, made and paid for once the project has closed is written down "
    "and known to both sides.",
    risk=INEFFICIENCY,
    side=OPERATIONS,
)
ESCALATION_TESTED = TemplateItemSpec(
    key="escalation-paths-tested",
    title="Escalation paths tested",
    guidance="A test escalation travelled from first line to the named second line, third line and vendor "
    "contacts, in and out of hours; the contact list is in the support documentation.",
    risk=FAILURE,
    side=OPERATIONS,
)
HIGH_RISKS = TemplateItemSpec(
    key="high-risks-fixed-or-accepted",
    title="Every high risk fixed or accepted with an expiry",
    guidance="Each high risk in the register is closed with evidence, or accepted in writing by an accountable "
    "person with a date on which the acceptance lapses and is reviewed.",
    risk=FAILURE,
    side=PROJECT,
)
HYPERCARE = TemplateItemSpec(
    key="hypercare-staffing-and-exit-criteria",
    title="Hypercare staffing and exit criteria agreed",
    guidance="Who from the project stays on hand, for how long, and the measurable criteria that end hypercare "
    "(for instance incident count and adoption at target) are agreed with the operations owner.",
    risk=FAILURE,
    side=PROJECT,
)
GO_LIVE_COMMUNICATED = TemplateItemSpec(
    key="go-live-date-communicated",
    title="Go-live date communicated",
    guidance="Everyone affected has been told the date, what happens on the day and where to get help, through "
    "channels they actually read; the messages are linked.",
    risk=ADOPTION,
    side=PROJECT,
)
USERS_TOLD_WHAT_CHANGES = TemplateItemSpec(
    key="users-told-what-changes",
    title="Users told what changes for them",
    guidance="Each affected group has received a short, role-specific note of what is different on day one: what "
    "stops, what starts and what stays the same.",
    risk=ADOPTION,
    side=PROJECT,
)
TRAINING = TemplateItemSpec(
    key="training-delivered",
    title="Training delivered with completion tracked",
    guidance="Training records show who completed which module, with the completion rate per group against the "
    "agreed target; those not yet trained have a date.",
    risk=ADOPTION,
    side=PROJECT,
)
SERVICE_DESK_BRIEFED = TemplateItemSpec(
    key="service-desk-briefed",
    title='Service desk briefed for "how do I" questions',
    guidance="First line has a briefing, an FAQ and the known-issue list, and a ticket category for questions so "
    "that the common ones can be fed back into the documentation.",
    risk=ADOPTION,
    side=PROJECT,
)
ADOPTION_MEASURES = TemplateItemSpec(
    key="adoption-measures-set",
    title="Adoption measures set: baseline, target, date and owner",
    guidance="Each measure has a baseline taken before go-live, a target, a review date and an owner, and is "
    "recorded as a KPI of the receiving service so readings can be watched in hypercare.",
    risk=ADOPTION,
    side=OPERATIONS,
)
BENEFITS_REVIEW = TemplateItemSpec(
    key="benefits-review-scheduled",
    title="Benefits review scheduled with an owner",
    guidance="A dated review of the business case's benefits is in the benefits owner's calendar, with the data "
    "that will be used to judge them named.",
    risk=ADOPTION,
    side=PROJECT,
)

# ----------------------------------------------------------------------------------------------- templates

SOFTWARE_ROLLOUT = TemplateDefinition(
    kind=TemplateKind.SOFTWARE_ROLLOUT,
    name="Software roll-out",
    description="A new or replaced application handed to the service desk and application support.",
    items=(
        # inefficiency
        OWNER_AND_SUPPORT_TIERS,
        SLAS_MEASURABLE,
        TemplateItemSpec(
            key="incident-categories-and-routing",
            title="Incident categories and routing set up",
            guidance="The service exists in the ticketing tool with categories, priority rules and an assignment "
            "group; a test ticket of each priority reached the right queue.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="service-catalogue-and-cmdb",
            title="Service catalogue and configuration records updated",
            guidance="The catalogue entry and configuration items (applications, servers, integrations) exist with "
            "owners and support groups; links to them are attached.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="runbooks-accepted",
            title="Runbooks accepted by the people who will use them",
            guidance="On-call engineers walked through the runbooks for start and stop, routine jobs, common faults "
            "and recovery, and signed that they can follow them unaided.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        KNOWLEDGE_TRANSFER,
        TemplateItemSpec(
            key="operations-access",
            title="Operations access provisioned",
            guidance="Operations engineers have the production accounts, roles and break-glass credentials they need "
            "and have logged in with them; project-only accounts are listed for removal.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="vendor-and-licence-contracts",
            title="Vendor, maintenance and licence contracts owned",
            guidance="Every contract and licence has a named owner in operations with its renewal date in their "
            "calendar, and the vendor's support contacts are in the runbook.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        OPEN_ISSUES,
        TemplateItemSpec(
            key="capacity-and-cost-forecast",
            title="Capacity limits and cost forecast documented",
            guidance="Known limits (users, transactions, storage) and twelve months of running cost are written "
            "down, with the level at which someone must act.",
            risk=INEFFICIENCY,
            side=PROJECT,
            mandatory=False,
        ),
        CHANGE_PROCESS,
        # failure
        TemplateItemSpec(
            key="monitoring-and-alerting",
            title="Monitoring and alerting routed to a staffed on-call",
            guidance="Health checks cover the service's key functions and alert the on-call rota; a test alert was "
            "received and acknowledged by the engineer on call.",
            risk=FAILURE,
            side=PROJECT,
        ),
        ESCALATION_TESTED,
        TemplateItemSpec(
            key="dependencies-mapped",
            title="Dependencies mapped with failure handling",
            guidance="Upstream and downstream systems are listed with what happens when each is unavailable (queue, "
            "retry, degrade) and whom to call.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="load-tested",
            title="Load tested at peak with headroom",
            guidance="A load test at the expected peak plus an agreed margin passed with response times within the "
            "SLA; the report and the test scripts are linked.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="backup-restore-and-dr-tested",
            title="Backup, restore and disaster recovery tested against targets",
            guidance="Operations restored from backup within the agreed recovery time and recovery point; the "
            "restore log and timings are attached.",
            risk=FAILURE,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="rollback-tested",
            title="Rollback tested",
            guidance="The rollback or roll-forward plan for the release was rehearsed end to end and its duration "
            "recorded.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="certificates-and-credentials-inventoried",
            title="Expiring certificates and credentials inventoried",
            guidance="Certificates, API keys and service-account passwords are listed with expiry dates and owners, "
            "and renewal reminders are in operations' calendar.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="failure-drill",
            title="Failure drill held",
            guidance="Operations caused a planned failure (a node stopped, a dependency cut) and recovered using the "
            "runbook; findings are logged.",
            risk=FAILURE,
            side=OPERATIONS,
            mandatory=False,
        ),
        TemplateItemSpec(
            key="security-review",
            title="Security review done",
            guidance="A security review or penetration test is complete and each finding is fixed or recorded as an "
            "accepted risk.",
            risk=FAILURE,
            side=PROJECT,
        ),
        HIGH_RISKS,
        HYPERCARE,
        # adoption
        GO_LIVE_COMMUNICATED,
        TemplateItemSpec(
            key="users-and-accounts-ready",
            title="Users identified and accounts ready",
            guidance="The users per role are confirmed with their managers and every account exists with the right "
            "permissions before go-live; a sample of users has logged in.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        USERS_TOLD_WHAT_CHANGES,
        TRAINING,
        TemplateItemSpec(
            key="user-documentation-published",
            title="User documentation published",
            guidance="Quick-start guides and how-to articles are published where users look for them (intranet, "
            "in-app help) and linked from the service catalogue.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        SERVICE_DESK_BRIEFED,
        TemplateItemSpec(
            key="acceptance-tests-passed",
            title="Acceptance tests passed with the customer",
            guidance="The customer's users ran acceptance tests covering the main business scenarios and signed "
            "them off; open defects are on the open issues list.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="super-users-named",
            title="Super-users named in each team",
            guidance="Each team has a trained super-user who answers first questions and passes problems on to the "
            "service desk.",
            risk=ADOPTION,
            side=PROJECT,
            mandatory=False,
        ),
        ADOPTION_MEASURES,
        BENEFITS_REVIEW,
    ),
)

SITE_LAUNCH = TemplateDefinition(
    kind=TemplateKind.SITE_LAUNCH,
    name="Site or facility launch",
    description="A new site, plant or facility handed to site operations and facilities maintenance.",
    items=(
        # inefficiency
        OWNER_AND_SUPPORT_TIERS,
        SLAS_MEASURABLE,
        TemplateItemSpec(
            key="fault-and-incident-routing",
            title="Fault and safety incident reporting routed",
            guidance="Equipment faults, safety incidents and facility issues each have a reporting route (work "
            "order, safety report, help desk); a test report of each reached the right team.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="asset-register-and-maintenance-plans",
            title="Asset register and maintenance plans loaded",
            guidance="Every installed asset (conveyors, HVAC, fire systems, lifts) is in the maintenance system with "
            "its preventive maintenance schedule and spare-parts list.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="operating-procedures-accepted",
            title="Standard operating procedures accepted by site staff",
            guidance="Shift leads walked through the procedures for start-up, shutdown, routine checks and common "
            "faults on the floor, and signed that they can follow them.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        KNOWLEDGE_TRANSFER,
        TemplateItemSpec(
            key="site-access",
            title="Site access and system logins provisioned",
            guidance="Operations staff have badges, keys and logins to the site's systems (warehouse, building "
            "management, maintenance) and have tried them; contractor access is listed for removal.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="maintenance-contracts-and-warranties",
            title="Maintenance contracts and warranties owned",
            guidance="Each maintenance, service and warranty contract has a named operations owner, its expiry date "
            "in their calendar and the vendor's call-out number posted on site.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        OPEN_ISSUES,
        TemplateItemSpec(
            key="staffing-and-capacity-plan",
            title="Staffing plan, capacity limits and cost forecast documented",
            guidance="Shift patterns, headcount per shift, the site's rated throughput and the running cost forecast "
            "are written down, with the volume at which extra shifts are needed.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        CHANGE_PROCESS,
        # failure
        TemplateItemSpec(
            key="building-and-safety-monitoring",
            title="Building and safety systems monitored by a staffed on-call",
            guidance="Building management, fire, intrusion and critical-equipment alarms reach a staffed monitoring "
            "point or on-call technician around the clock; a test alarm was received and acknowledged.",
            risk=FAILURE,
            side=PROJECT,
        ),
        ESCALATION_TESTED,
        TemplateItemSpec(
            key="utilities-and-supplier-dependencies",
            title="Utilities and supplier dependencies mapped with contingencies",
            guidance="Power, water, network, carriers and key suppliers are listed with what the site does when each "
            "fails (generator, manual process, alternate carrier) and whom to call.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="ramp-up-tested-at-peak",
            title="Ramp-up tested at peak volume with headroom",
            guidance="The site ran a full shift at planned peak volume plus an agreed margin (or a simulation of "
            "it), with throughput and error rates recorded.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="backup-power-and-recovery-tested",
            title="Backup power and recovery tested",
            guidance="Generators and UPS were tested under load and the site's restart after a power loss was "
            "rehearsed against the agreed recovery time; results attached.",
            risk=FAILURE,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="fallback-plan-rehearsed",
            title="Fallback plan rehearsed",
            guidance="Where volume goes if the site cannot operate (old site, partner) and how to switch it over was "
            "rehearsed, and the switch-over time recorded.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="statutory-certificates-inventoried",
            title="Statutory certificates in hand with re-inspection dates",
            guidance="Occupancy, fire safety, lift, electrical and pressure-system certificates are filed, with "
            "expiry and re-inspection dates in operations' calendar.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="evacuation-drill",
            title="Emergency evacuation drill held",
            guidance="A timed evacuation drill with the operating staff was held; findings are closed or assigned.",
            risk=FAILURE,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="critical-spares-stocked",
            title="Critical spare parts stocked",
            guidance="Spares for single points of failure (drive motors, scanners, controllers) are on site and in "
            "the maintenance system with reorder levels.",
            risk=FAILURE,
            side=OPERATIONS,
            mandatory=False,
        ),
        TemplateItemSpec(
            key="physical-and-control-system-security",
            title="Physical and control-system security review done",
            guidance="Perimeter, access control and the site's networked control systems were reviewed; each "
            "finding is fixed or recorded as an accepted risk.",
            risk=FAILURE,
            side=PROJECT,
        ),
        HIGH_RISKS,
        HYPERCARE,
        # adoption
        GO_LIVE_COMMUNICATED,
        TemplateItemSpec(
            key="staff-inducted-and-rostered",
            title="Staff recruited, inducted and rostered",
            guidance="Every role on the first month's rota is filled; staff have completed site induction and their "
            "accounts, badges and protective equipment are ready.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="customers-and-partners-told",
            title="Customers and partners told what changes",
            guidance="Customers, carriers and suppliers have the new address, cut-off times, booking rules and "
            "contacts in writing before launch.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="operator-training-and-certification",
            title="Operator training and certification completed",
            guidance="Training records show each operator trained, and certified where required (forklift, "
            "lock-out), for their station before their first shift.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="work-instructions-at-point-of-use",
            title="Work instructions posted at the point of use",
            guidance="Current work instructions and safety signage are at each workstation and on the site intranet; "
            "draft and superseded versions are removed.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="customer-service-briefed",
            title="Customer service and help desks briefed",
            guidance="Customer service and internal help desks know the launch date and what changes for customers, "
            "and have an FAQ and the escalation contact on site.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="site-acceptance-test",
            title="Site acceptance test passed with the customer",
            guidance="The business owner ran the site acceptance test on real or representative orders and signed "
            "it off; the punch list is on the open issues list.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="neighbours-and-authorities-informed",
            title="Neighbours and local authorities informed",
            guidance="Neighbours, the local authority and emergency services know the opening date, traffic and "
            "operating hours, and have a contact for complaints.",
            risk=ADOPTION,
            side=PROJECT,
            mandatory=False,
        ),
        ADOPTION_MEASURES,
        BENEFITS_REVIEW,
    ),
)

OFFICE_RELOCATION = TemplateDefinition(
    kind=TemplateKind.OFFICE_RELOCATION,
    name="Office relocation",
    description="A move to new office premises handed to facilities and workplace IT support.",
    items=(
        # inefficiency
        OWNER_AND_SUPPORT_TIERS,
        TemplateItemSpec(
            key="facilities-service-levels",
            title="Facilities service levels agreed and measurable",
            guidance="Response times for facilities requests (heating, cleaning, repairs, meeting-room equipment) are "
            "agreed with the landlord and internal teams and reported from the help desk tool.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="facilities-request-routing",
            title="Facilities and IT request routing set up",
            guidance="Requests about the new office have categories that land with the right team (facilities, "
            "landlord, IT); a test request of each type was routed correctly.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="space-and-asset-records",
            title="Space, asset and network records updated",
            guidance="Floor plans, the desk and room inventory, network ports and moved IT assets are recorded "
            "against the new location; records of the old location are retired.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="building-handbook-accepted",
            title="Building operating handbook accepted by facilities",
            guidance="Facilities staff walked the building with the handbook (opening and closing, HVAC settings, "
            "meeting-room AV, whom to call) and signed that they can run it.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        KNOWLEDGE_TRANSFER,
        TemplateItemSpec(
            key="facilities-and-it-access",
            title="Facilities and IT access provisioned",
            guidance="Facilities and IT support have master keys, alarm codes and admin access to building and "
            "room-booking systems, tested on site; contractor access is listed for removal.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="lease-and-service-contracts",
            title="Lease and service contracts owned",
            guidance="Lease, cleaning, security, catering and maintenance contracts each have a named owner with "
            "notice and renewal dates; contracts at the old site have confirmed end dates.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        OPEN_ISSUES,
        TemplateItemSpec(
            key="occupancy-and-running-cost",
            title="Occupancy limits and running cost forecast documented",
            guidance="Desk and room capacity, the permitted occupancy and the yearly running cost (rent, service "
            "charge, energy) are written down, with the headcount at which space runs out.",
            risk=INEFFICIENCY,
            side=PROJECT,
            mandatory=False,
        ),
        TemplateItemSpec(
            key="old-premises-handed-back",
            title="Old premises vacated and handed back",
            guidance="The old premises are cleared, dilapidations agreed and keys returned, with final meter "
            "readings recorded, so that nobody pays for two sites.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        CHANGE_PROCESS,
        # failure
        TemplateItemSpec(
            key="building-alarms-monitored",
            title="Building alarms routed to a staffed on-call",
            guidance="Fire, intrusion, leak and HVAC alarms reach a monitoring company or on-call facilities contact "
            "around the clock; a test alarm was received and acknowledged.",
            risk=FAILURE,
            side=PROJECT,
        ),
        ESCALATION_TESTED,
        TemplateItemSpec(
            key="network-power-and-supplier-dependencies",
            title="Network, power and landlord dependencies mapped",
            guidance="Internet circuits, power, landlord services and key suppliers are listed with what happens when "
            "each fails (backup circuit, home working) and whom to call.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="peak-occupancy-tested",
            title="Network and meeting-room capacity tested at peak occupancy",
            guidance="Wi-Fi, video calls and room booking were tested on a day with the expected peak headcount and "
            "stayed within agreed limits; measurements attached.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="backup-circuit-and-local-it-recovery",
            title="Backup circuit and on-site IT recovery tested",
            guidance="Failover to the backup internet circuit and recovery of on-site equipment (printers, AV, local "
            "servers) were tested, with times recorded against targets.",
            risk=FAILURE,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="move-fallback-plan",
            title="Move-day fallback plan agreed",
            guidance="If the new office is not usable on the day, where people work (old office, home) and who "
            "decides is written down and known to team leads.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="building-certificates-and-codes-inventoried",
            title="Building certificates and access codes inventoried",
            guidance="Fire safety, electrical, lift and occupancy certificates and alarm and door codes are listed "
            "with expiry or rotation dates and owners.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="evacuation-drill-with-wardens",
            title="Evacuation drill held with fire wardens",
            guidance="Fire wardens are named for each floor and a timed evacuation drill was held in the new "
            "building; findings are closed or assigned.",
            risk=FAILURE,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="physical-security-review",
            title="Physical security review done",
            guidance="Access control, visitor management, CCTV and storage of confidential material were reviewed; "
            "each finding is fixed or recorded as an accepted risk.",
            risk=FAILURE,
            side=PROJECT,
        ),
        HIGH_RISKS,
        HYPERCARE,
        # adoption
        TemplateItemSpec(
            key="move-date-communicated",
            title="Move date and move-day plan communicated",
            guidance="Staff, visitors and suppliers were told the move date, the new address, what to pack and where "
            "to get help; the messages are linked.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="desks-and-badges-ready",
            title="Desks allocated and badges ready",
            guidance="Every team has its desk or neighbourhood allocation, and each person's badge and locker work "
            "before their first day.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="staff-told-what-changes",
            title="Staff told what changes day to day",
            guidance="Staff have a short guide to desk booking, parking, travel, catering and meeting rooms at the "
            "new site.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="building-orientation",
            title="Building orientation delivered with attendance tracked",
            guidance="Tours or videos on the building, safety, desk booking and room AV were offered to every team, "
            "with attendance tracked and a catch-up for absentees.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="office-guide-published",
            title="Office guide published",
            guidance="The office guide (floor plans, how to book, AV quick-starts, whom to call) is on the intranet "
            "and posted in the building.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        SERVICE_DESK_BRIEFED,
        TemplateItemSpec(
            key="move-in-walkthrough-accepted",
            title="Move-in walk-through accepted by the business",
            guidance="The business sponsor and facilities walked the finished space against the requirements "
            "(desks, rooms, AV, accessibility) and signed it off; snags are on the open issues list.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="accessibility-needs-met",
            title="Accessibility needs met on day one",
            guidance="Staff with access needs were asked in advance, and their adjustments (parking, desks, "
            "equipment, personal evacuation plans) are in place for their first day.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="move-champions-named",
            title="Move champions named per team",
            guidance="Each team has a champion who passes on move information and collects issues in the first weeks.",
            risk=ADOPTION,
            side=PROJECT,
            mandatory=False,
        ),
        ADOPTION_MEASURES,
        BENEFITS_REVIEW,
    ),
)

PROCESS_REDESIGN = TemplateDefinition(
    kind=TemplateKind.PROCESS_REDESIGN,
    name="Process redesign",
    description="A changed business process handed to the teams that will perform it and its process owner.",
    items=(
        # inefficiency
        TemplateItemSpec(
            key="process-owner-and-support-tiers",
            title="Process owner and support tiers agreed",
            guidance="A named process owner, and who handles exceptions at each level (team lead, process expert, "
            "system support), are written down and signed off by the receiving team's lead.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="process-service-levels",
            title="Process service levels agreed and measurable",
            guidance="Turnaround and quality targets are agreed with the process's customers and can be reported "
            "from system data rather than manual counts.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="exception-routing",
            title="Exception and incident routing set up",
            guidance="Cases the new process cannot handle have a category and a queue with an owner; a test "
            "exception reached it.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="process-records-updated",
            title="Process maps, RACI and controls register updated",
            guidance="The process repository holds the new maps, RACI and controls; retired procedures are marked "
            "superseded so that nobody follows them.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="work-instructions-accepted",
            title="Work instructions accepted by the people who will use them",
            guidance="Team members handled real cases with the work instructions and signed that they can follow "
            "them unaided; their corrections are incorporated.",
            risk=INEFFICIENCY,
            side=OPERATIONS,
        ),
        KNOWLEDGE_TRANSFER,
        TemplateItemSpec(
            key="system-roles-provisioned",
            title="System roles provisioned for the new process",
            guidance="Everyone performing a step has the system roles the new process needs; roles that only the old "
            "process needed are scheduled for removal.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="supplier-agreements-updated",
            title="Supplier and outsourcing agreements updated",
            guidance="Contracts with suppliers who perform steps of the process reflect the new process and its "
            "service levels, each with a named owner.",
            risk=INEFFICIENCY,
            side=PROJECT,
            mandatory=False,
        ),
        OPEN_ISSUES,
        TemplateItemSpec(
            key="staffing-and-workload-model",
            title="Staffing and workload model documented",
            guidance="Volumes per step, handling times and the staffing they imply are written down, with the volume "
            "at which the team needs more people.",
            risk=INEFFICIENCY,
            side=PROJECT,
        ),
        CHANGE_PROCESS,
        # failure
        TemplateItemSpec(
            key="process-health-monitored",
            title="Backlog and error rates monitored with alerts to a named owner",
            guidance="Backlog, ageing and error-rate reports alert a named person (not a shared mailbox) when a "
            "threshold is crossed; a simulated breach was noticed and acted on.",
            risk=FAILURE,
            side=PROJECT,
        ),
        ESCALATION_TESTED,
        TemplateItemSpec(
            key="handoffs-mapped",
            title="Upstream and downstream hand-offs mapped with failure handling",
            guidance="Every input and output of the process (teams, systems, suppliers) is listed with what happens "
            "when it is late or wrong, and whom to call.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="peak-volume-tested",
            title="Process tested at peak volume",
            guidance="A pilot or simulation at peak volume (for instance month-end) met the turnaround target with "
            "the planned staffing; results are attached.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="in-flight-cases-reconciled",
            title="In-flight cases migrated and reconciled",
            guidance="Cases open at the switch-over were moved to the new process and reconciled by count and value; "
            "none were lost or duplicated.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="fallback-to-old-process",
            title="Fallback to the old process rehearsed",
            guidance="How to return to the old process, and who decides, is written down and was walked through; "
            "the old process's tools stay available until an agreed date.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="controls-tested",
            title="Controls and compliance checks tested",
            guidance="Each control in the new process (approvals, segregation of duties, audit trail) was tested on "
            "sample cases and reviewed by risk or compliance.",
            risk=FAILURE,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="deputies-for-critical-roles",
            title="Deputies trained for every critical role",
            guidance="Each step that only one person can do today has a trained deputy, so that one absence does not "
            "stop the process.",
            risk=FAILURE,
            side=OPERATIONS,
        ),
        TemplateItemSpec(
            key="disruption-drill",
            title="Disruption drill held",
            guidance="The team handled a simulated disruption (system outage, key person absent) with the documented "
            "workaround; findings are logged.",
            risk=FAILURE,
            side=OPERATIONS,
            mandatory=False,
        ),
        HIGH_RISKS,
        HYPERCARE,
        # adoption
        GO_LIVE_COMMUNICATED,
        TemplateItemSpec(
            key="participants-and-roles-assigned",
            title="Participants identified and roles assigned",
            guidance="Everyone who performs, approves or receives output from the process is listed by role, and "
            "their managers confirmed the assignments.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        USERS_TOLD_WHAT_CHANGES,
        TRAINING,
        TemplateItemSpec(
            key="process-guide-published",
            title="Process guide published",
            guidance="A short guide to the new process (what to do, when, with which form or system) is published "
            "where people look, and the old guidance is withdrawn.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        SERVICE_DESK_BRIEFED,
        TemplateItemSpec(
            key="pilot-accepted-by-customers",
            title="Pilot accepted by the process's customers",
            guidance="The customers of the process reviewed a pilot on real cases and signed that its outputs meet "
            "their needs; gaps are on the open issues list.",
            risk=ADOPTION,
            side=PROJECT,
        ),
        TemplateItemSpec(
            key="old-workarounds-retired",
            title="Old workarounds retired",
            guidance="Spreadsheets, forms and mailboxes of the old process are closed or redirected on an agreed "
            "date, so that people cannot drift back to them.",
            risk=ADOPTION,
            side=OPERATIONS,
        ),
        ADOPTION_MEASURES,
        BENEFITS_REVIEW,
    ),
)

DEFAULT_TEMPLATES: list[TemplateDefinition] = [SOFTWARE_ROLLOUT, SITE_LAUNCH, OFFICE_RELOCATION, PROCESS_REDESIGN]


@transaction.atomic
def install_default_templates() -> list[tuple[ChecklistTemplate, bool]]:
    """Install every default template; per definition, the current template and whether a version was written.

    One transaction, so that a definition refused by the service leaves no half-installed set behind.
    """
    return [
        template_install(kind=d.kind, name=d.name, description=d.description, items=d.items) for d in DEFAULT_TEMPLATES
    ]
