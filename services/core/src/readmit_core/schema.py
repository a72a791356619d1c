"""The patient encounter: the one definition every service uses.

Each field is a column of the UCI data set's ``diabetic_data.csv`` that a clinician knows at
discharge, with its type, the values or range it may take, a human label and description, and an
example. The pydantic models (``readmit_core.encounter``), the feature encoding
(``readmit_core.features``), the trainer, the api, the ui and the load tests all derive from
``FIELDS``; nothing else lists the fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# 2: payer_code and weight added; the models carry fitted ICD-9 readmission rates.
# 3: race and payer_code are no longer model inputs (kept, optional, for the by-group audit).
SCHEMA_VERSION = "3"


class Kind(StrEnum):
    CATEGORY = "category"  # one of ``choices``
    INTEGER = "integer"  # a whole number within [minimum, maximum]
    ICD9 = "icd9"  # an ICD-9-CM code as the data set writes it


class Group(StrEnum):
    PATIENT = "patient"
    ADMISSION = "admission"
    DIAGNOSES = "diagnoses"
    LABS = "labs"
    MEDICATIONS = "medications"


@dataclass(frozen=True)
class Field:
    name: str  # the column name in diabetic_data.csv and the JSON key in the api
    kind: Kind
    group: Group
    label: str
    description: str
    example: Any
    # CATEGORY: the allowed values, in a fixed order (the order is the model's category code).
    choices: tuple[Any, ...] = ()
    # Human names of coded choices (the ids of IDs_mapping.csv); plain choices name themselves.
    choice_labels: dict[Any, str] = field(default_factory=dict)
    minimum: int | None = None
    maximum: int | None = None
    # Nullable fields accept null (the data set's "?"): unknown, not recorded.
    nullable: bool = False
    # False: accepted and kept for the by-group audit, never a feature (race, insurance: a
    # risk that steers follow-up must not rest on them).
    model_input: bool = True

    @property
    def is_integer(self) -> bool:
        """Counts and coded ids (admission type...) are integers; everything else is text."""
        return self.kind is Kind.INTEGER or (
            bool(self.choices) and isinstance(self.choices[0], int)
        )

    def label_of(self, value: Any) -> str:
        """Human name of a choice (``None`` reads "Unknown")."""
        if value is None:
            return "Unknown / not recorded"
        return self.choice_labels.get(value, str(value))


# The data set's inclusion criterion is a stay of 1 to 14 days; other bounds leave headroom over
# the largest value seen (labs 132, meds 81, visits 42/76/21, diagnoses 16).
AGE_BRACKETS = tuple(f"[{lo}-{lo + 10})" for lo in range(0, 100, 10))

ADMISSION_TYPES = {
    1: "Emergency",
    2: "Urgent",
    3: "Elective",
    4: "Newborn",
    5: "Not Available",
    6: "NULL",
    7: "Trauma Center",
    8: "Not Mapped",
}

# Encounters that end in death or hospice cannot be readmitted: they are out of scope for the model
# (dropped from training) and rejected by the api.
DISCHARGE_EXCLUDED = {
    11: "Expired",
    13: "Hospice / home",
    14: "Hospice / medical facility",
    19: "Expired at home. Medicaid only, hospice.",
    20: "Expired in a medical facility. Medicaid only, hospice.",
    21: "Expired, place unknown. Medicaid only, hospice.",
}

DISCHARGE_DISPOSITIONS = {
    1: "Discharged to home",
    2: "Discharged/transferred to another short term hospital",
    3: "Discharged/transferred to SNF",
    4: "Discharged/transferred to ICF",
    5: "Discharged/transferred to another type of inpatient care institution",
    6: "Discharged/transferred to home with home health service",
    7: "Left AMA",
    8: "Discharged/transferred to home under care of Home IV provider",
    9: "Admitted as an inpatient to this hospital",
    10: "Neonate discharged to another hospital for neonatal aftercare",
    12: "Still patient or expected to return for outpatient services",
    15: "Discharged/transferred within this institution to Medicare approved swing bed",
    16: "Discharged/transferred/referred another institution for outpatient services",
    17: "Discharged/transferred/referred to this institution for outpatient services",
    18: "NULL",
    22: "Discharged/transferred to another rehab fac including rehab units of a hospital",
    23: "Discharged/transferred to a long term care hospital",
    24: "Discharged/transferred to a nursing facility certified under Medicaid but not certified "
    "under Medicare",
    25: "Not Mapped",
    26: "Unknown/Invalid",
    27: "Discharged/transferred to a federal health care facility",
    28: "Discharged/transferred/referred to a psychiatric hospital of psychiatric distinct part "
    "unit of a hospital",
    29: "Discharged/transferred to a Critical Access Hospital (CAH)",
    30: "Discharged/transferred to another Type of Health Care Institution not Defined Elsewhere",
}

ADMISSION_SOURCES = {
    1: "Physician Referral",
    2: "Clinic Referral",
    3: "HMO Referral",
    4: "Transfer from a hospital",
    5: "Transfer from a Skilled Nursing Facility (SNF)",
    6: "Transfer from another health care facility",
    7: "Emergency Room",
    8: "Court/Law Enforcement",
    9: "Not Available",
    10: "Transfer from critial access hospital",
    11: "Normal Delivery",
    12: "Premature Delivery",
    13: "Sick Baby",
    14: "Extramural Birth",
    15: "Not Available",
    17: "NULL",
    18: "Transfer From Another Home Health Agency",
    19: "Readmission to Same Home Health Agency",
    20: "Not Mapped",
    21: "Unknown/Invalid",
    22: "Transfer from hospital inpt/same fac reslt in a sep claim",
    23: "Born inside this hospital",
    24: "Born outside this hospital",
    25: "Transfer from Ambulatory Surgery Center",
    26: "Transfer from Hospice",
}

MEDICAL_SPECIALTIES = (
    "AllergyandImmunology",
    "Anesthesiology",
    "Anesthesiology-Pediatric",
    "Cardiology",
    "Cardiology-Pediatric",
    "DCPTEAM",
    "Dentistry",
    "Dermatology",
    "Emergency/Trauma",
    "Endocrinology",
    "Endocrinology-Metabolism",
    "Family/GeneralPractice",
    "Gastroenterology",
    "Gynecology",
    "Hematology",
    "Hematology/Oncology",
    "Hospitalist",
    "InfectiousDiseases",
    "InternalMedicine",
    "Nephrology",
    "Neurology",
    "Neurophysiology",
    "Obsterics&Gynecology-GynecologicOnco",
    "Obstetrics",
    "ObstetricsandGynecology",
    "Oncology",
    "Ophthalmology",
    "Orthopedics",
    "Orthopedics-Reconstructive",
    "Osteopath",
    "Otolaryngology",
    "OutreachServices",
    "Pathology",
    "Pediatrics",
    "Pediatrics-AllergyandImmunology",
    "Pediatrics-CriticalCare",
    "Pediatrics-EmergencyMedicine",
    "Pediatrics-Endocrinology",
    "Pediatrics-Hematology-Oncology",
    "Pediatrics-InfectiousDiseases",
    "Pediatrics-Neurology",
    "Pediatrics-Pulmonology",
    "Perinatology",
    "PhysicalMedicineandRehabilitation",
    "PhysicianNotFound",
    "Podiatry",
    "Proctology",
    "Psychiatry",
    "Psychiatry-Addictive",
    "Psychiatry-Child/Adolescent",
    "Psychology",
    "Pulmonology",
    "Radiologist",
    "Radiology",
    "Resident",
    "Rheumatology",
    "Speech",
    "SportsMedicine",
    "Surgeon",
    "Surgery-Cardiovascular",
    "Surgery-Cardiovascular/Thoracic",
    "Surgery-Colon&Rectal",
    "Surgery-General",
    "Surgery-Maxillofacial",
    "Surgery-Neuro",
    "Surgery-Pediatric",
    "Surgery-Plastic",
    "Surgery-PlasticwithinHeadandNeck",
    "Surgery-Thoracic",
    "Surgery-Vascular",
    "SurgicalSpecialty",
    "Urology",
)

# The payer as the data set codes it. Strack et al. name Medicare, Blue Cross/Blue Shield and
# self-pay among the payers but publish no table of the codes, so none is given a name here.
PAYER_CODES = (
    "BC",
    "CH",
    "CM",
    "CP",
    "DM",
    "FR",
    "HM",
    "MC",
    "MD",
    "MP",
    "OG",
    "OT",
    "PO",
    "SI",
    "SP",
    "UN",
    "WC",
)
# Body weight in pounds, bracketed as the data set records it (for 3 % of the encounters).
WEIGHT_BRACKETS = (
    "[0-25)",
    "[25-50)",
    "[50-75)",
    "[75-100)",
    "[100-125)",
    "[125-150)",
    "[150-175)",
    "[175-200)",
    ">200",
)

# The 23 diabetes medications: whether the drug was prescribed and how its dose changed.
MEDICATIONS = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)
DOSE_CHOICES = ("No", "Steady", "Up", "Down")
DOSE_LABELS = {
    "No": "Not prescribed",
    "Steady": "Prescribed, dose unchanged",
    "Up": "Dose increased",
    "Down": "Dose decreased",
}

# ICD-9-CM as the data set writes it: numeric codes without leading zeros ("8", "250.83"),
# supplementary V codes ("V57") and external-cause E codes ("E909"). ASCII digits only: `\d`
# also matches other scripts' digits in pydantic's regex engine (full-width 428, U+FF14 U+FF12
# U+FF18, passed and was scored as an unseen code).
ICD9_PATTERN = r"^([0-9]{1,3}(\.[0-9]{1,2})?|V[0-9]{2}(\.[0-9]{1,2})?|E[0-9]{3}(\.[0-9])?)$"
ICD9_RE = re.compile(ICD9_PATTERN)


def _count(
    name: str,
    label: str,
    description: str,
    example: int,
    lo: int,
    hi: int,
    group: Group = Group.ADMISSION,
) -> Field:
    return Field(name, Kind.INTEGER, group, label, description, example, minimum=lo, maximum=hi)


def _diagnosis(n: int, example: str, which: str) -> Field:
    return Field(
        f"diag_{n}",
        Kind.ICD9,
        Group.DIAGNOSES,
        f"Diagnosis {n} (ICD-9)",
        f"{which} diagnosis as an ICD-9-CM code (e.g. 428 heart failure, 250.83 diabetes).",
        example,
        nullable=True,
    )


FIELDS: tuple[Field, ...] = (
    Field(
        "race",
        Kind.CATEGORY,
        Group.PATIENT,
        "Race",
        "Race as recorded by the hospital; not a model input (the by-group audit only).",
        "Caucasian",
        choices=("Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other"),
        choice_labels={"AfricanAmerican": "African American"},
        nullable=True,
        model_input=False,
    ),
    Field(
        "gender",
        Kind.CATEGORY,
        Group.PATIENT,
        "Gender",
        "Gender as recorded by the hospital.",
        "Female",
        choices=("Female", "Male", "Unknown/Invalid"),
    ),
    Field(
        "age",
        Kind.CATEGORY,
        Group.PATIENT,
        "Age bracket",
        "Age in 10-year brackets.",
        "[70-80)",
        choices=AGE_BRACKETS,
        choice_labels={a: f"{a[1:-1]} years" for a in AGE_BRACKETS},
    ),
    Field(
        "weight",
        Kind.CATEGORY,
        Group.PATIENT,
        "Weight (lb)",
        "Body weight in pounds, in the data set's 25-lb brackets (rarely recorded).",
        None,
        choices=WEIGHT_BRACKETS,
        choice_labels={
            w: f"{w[1:-1]} lb" if w[0] == "[" else "over 200 lb" for w in WEIGHT_BRACKETS
        },
        nullable=True,
    ),
    Field(
        "payer_code",
        Kind.CATEGORY,
        Group.PATIENT,
        "Payer code",
        "The payer (insurance) as the hospital coded it (codes not published); not a model "
        "input (the by-group audit only).",
        "MC",
        choices=PAYER_CODES,
        nullable=True,
        model_input=False,
    ),
    Field(
        "admission_type_id",
        Kind.CATEGORY,
        Group.ADMISSION,
        "Admission type",
        "How the patient was admitted.",
        1,
        choices=tuple(ADMISSION_TYPES),
        choice_labels=ADMISSION_TYPES,
    ),
    Field(
        "discharge_disposition_id",
        Kind.CATEGORY,
        Group.ADMISSION,
        "Discharge disposition",
        "Where the patient was discharged to (death and hospice are out of scope).",
        1,
        choices=tuple(DISCHARGE_DISPOSITIONS),
        choice_labels=DISCHARGE_DISPOSITIONS,
    ),
    Field(
        "admission_source_id",
        Kind.CATEGORY,
        Group.ADMISSION,
        "Admission source",
        "Where the patient came from.",
        7,
        choices=tuple(ADMISSION_SOURCES),
        choice_labels=ADMISSION_SOURCES,
    ),
    _count("time_in_hospital", "Days in hospital", "Length of stay in days (1 to 14).", 4, 1, 14),
    Field(
        "medical_specialty",
        Kind.CATEGORY,
        Group.ADMISSION,
        "Admitting physician specialty",
        "Specialty of the admitting physician.",
        "InternalMedicine",
        choices=MEDICAL_SPECIALTIES,
        nullable=True,
    ),
    _count("num_lab_procedures", "Lab tests", "Number of lab tests during the stay.", 44, 0, 200),
    _count("num_procedures", "Procedures", "Number of procedures other than lab tests.", 1, 0, 20),
    _count(
        "num_medications", "Medications given", "Number of distinct medications given.", 15, 0, 150
    ),
    _count(
        "number_outpatient",
        "Outpatient visits (prior year)",
        "Outpatient visits in the year before the encounter.",
        0,
        0,
        100,
        Group.PATIENT,
    ),
    _count(
        "number_emergency",
        "Emergency visits (prior year)",
        "Emergency visits in the year before the encounter.",
        0,
        0,
        100,
        Group.PATIENT,
    ),
    _count(
        "number_inpatient",
        "Inpatient stays (prior year)",
        "Inpatient admissions in the year before the encounter.",
        0,
        0,
        50,
        Group.PATIENT,
    ),
    _diagnosis(1, "428", "Primary"),
    _diagnosis(2, "250.01", "Secondary"),
    _diagnosis(3, "276", "Additional secondary"),
    _count(
        "number_diagnoses",
        "Diagnoses entered",
        "Number of diagnoses entered in the system.",
        8,
        1,
        20,
        Group.DIAGNOSES,
    ),
    Field(
        "max_glu_serum",
        Kind.CATEGORY,
        Group.LABS,
        "Max glucose serum",
        "Glucose serum test result (mg/dL); None = not measured.",
        "None",
        choices=("None", "Norm", ">200", ">300"),
        choice_labels={
            "None": "Not measured",
            "Norm": "Normal (<= 200)",
            ">200": "> 200",
            ">300": "> 300",
        },
    ),
    Field(
        "A1Cresult",
        Kind.CATEGORY,
        Group.LABS,
        "HbA1c result",
        "HbA1c test result (%); None = not measured.",
        "None",
        choices=("None", "Norm", ">7", ">8"),
        choice_labels={"None": "Not measured", "Norm": "Normal (< 7)", ">7": "7 to 8", ">8": "> 8"},
    ),
    *(
        Field(
            m,
            Kind.CATEGORY,
            Group.MEDICATIONS,
            m.replace("-", " / ").capitalize(),
            f"{m}: prescribed, and the change of its dose.",
            "Steady" if m == "insulin" else "No",
            choices=DOSE_CHOICES,
            choice_labels=DOSE_LABELS,
        )
        for m in MEDICATIONS
    ),
    Field(
        "change",
        Kind.CATEGORY,
        Group.MEDICATIONS,
        "Diabetes medication changed",
        "Whether any diabetes medication (dose or drug) was changed.",
        "No",
        choices=("No", "Ch"),
        choice_labels={"No": "No change", "Ch": "Changed"},
    ),
    Field(
        "diabetesMed",
        Kind.CATEGORY,
        Group.MEDICATIONS,
        "Diabetes medication prescribed",
        "Whether any diabetes medication was prescribed.",
        "Yes",
        choices=("Yes", "No"),
    ),
)

FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(FIELDS_BY_NAME)
# The fields the model reads; the others are accepted (and audited by group) but never scored.
MODEL_INPUTS: tuple[Field, ...] = tuple(f for f in FIELDS if f.model_input)

# The caller's own id of an encounter (the data set's `encounter_id` column, a hospital's visit
# number): optional, never a model input, echoed into the api's audit record so a risk can be
# traced to the encounter it was shown for. Not a patient field: a hospital's opaque reference.
ENCOUNTER_ID = "encounter_id"
ENCOUNTER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"

# The label the model predicts, and the data set columns that are not model input.
TARGET_COLUMN = "readmitted"
TARGET_POSITIVE = "<30"
PATIENT_ID_COLUMN = "patient_nbr"


def example_encounter() -> dict[str, Any]:
    """A complete, valid encounter built from each field's example."""
    return {f.name: f.example for f in FIELDS}


def fields_in(group: Group) -> tuple[Field, ...]:
    return tuple(f for f in FIELDS if f.group is group)
