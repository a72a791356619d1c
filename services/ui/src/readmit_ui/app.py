"""The clinicians' page: one encounter, a CSV of many, and what model answers.

Run: ``readmit-ui`` (or ``streamlit run services/ui/src/readmit_ui/app.py``), with READMIT_API_URL
pointing at the api (and READMIT_API_KEY when the api needs one).
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from readmit_core.explain import label
from readmit_core.schema import Field, Group, Kind, example_encounter, fields_in
from readmit_ui.batch import parse_csv, predict_in_chunks, template_csv
from readmit_ui.client import ApiCallError, ApiClient
from readmit_ui.settings import UiSettings
from readmit_ui.signin import sign_out_button, signed_in_user

GROUP_TITLES = {
    Group.PATIENT: "Patient",
    Group.ADMISSION: "Admission",
    Group.DIAGNOSES: "Diagnoses",
    Group.LABS: "Lab results",
    Group.MEDICATIONS: "Diabetes medications",
}
BAND_STYLE = {"low": st.success, "medium": st.warning, "high": st.error}
TOP_FACTORS = 8  # reasons shown under a single encounter's risk


def field_input(f: Field, default: Any) -> Any:
    """One widget for one schema field, with its label, help and limits."""
    key = f"field-{f.name}"
    if f.kind is Kind.CATEGORY:
        options = [None, *f.choices] if f.nullable else list(f.choices)
        return st.selectbox(
            f.label,
            options,
            index=options.index(default),
            key=key,
            format_func=f.label_of,
            help=f.description,
        )
    if f.kind is Kind.INTEGER:
        return int(
            st.number_input(
                f.label,
                min_value=f.minimum,
                max_value=f.maximum,
                value=default,
                step=1,
                key=key,
                help=f.description,
            )
        )
    text = st.text_input(
        f.label,
        value=default or "",
        key=key,
        help=f.description + " Leave empty if unknown.",
        placeholder="e.g. 428",
    )
    return text.strip() or None


def encounter_form() -> dict[str, Any] | None:
    """The form, grouped as a clinician reads a discharge summary; the record on submit."""
    defaults = example_encounter()
    record: dict[str, Any] = {}
    with st.form("encounter"):
        for group, title in GROUP_TITLES.items():
            fields = [f for f in fields_in(group) if f.model_input]  # race, payer: not asked
            with st.expander(title, expanded=group is not Group.MEDICATIONS):
                columns = st.columns(3)
                for i, f in enumerate(fields):
                    with columns[i % 3]:
                        record[f.name] = field_input(f, defaults[f.name])
        submitted = st.form_submit_button("Predict readmission risk", type="primary")
    return record if submitted else None


def show_prediction(result: dict[str, Any]) -> None:
    risk, band = result["readmission_risk"], result["risk_band"]
    model = result["model"]
    BAND_STYLE[band](f"Readmission risk within 30 days: **{risk:.1%}** — {band} risk")
    left, middle, right = st.columns(3)
    left.metric("Risk", f"{risk:.1%}")
    middle.metric("Flag threshold", f"{result['threshold']:.1%}")
    right.metric("Model", f"{model['name']} v{model['version']}")
    st.caption(
        f"Of 100 patients like this one, about {round(risk * 100)} would be readmitted within 30 "
        f"days. Encounters at or above {result['threshold']:.1%} are flagged for follow-up."
    )


def show_reasons(explanation: dict[str, Any]) -> None:
    """The factors as bars: log-odds each field adds (right, red) or takes away (left, blue)."""
    st.subheader("What raised / lowered this risk")
    factors = pd.DataFrame(
        {
            "factor": f"{f['label']}: {f['value_label']}",
            "effect (log-odds)": f["contribution"],
            "direction": "raised" if f["contribution"] > 0 else "lowered",
        }
        for f in explanation["factors"]
        if f["contribution"] != 0  # fields no split of the model looked at
    )
    if factors.empty:
        st.caption("The model gives this encounter the average risk: no field moved it.")
        return
    chart = (
        alt.Chart(factors)
        .mark_bar()
        .encode(
            x=alt.X("effect (log-odds):Q"),
            y=alt.Y("factor:N", sort=None, title=None, axis=alt.Axis(labelLimit=400)),
            color=alt.Color(
                "direction:N",
                title=None,
                scale=alt.Scale(domain=["raised", "lowered"], range=["#c0392b", "#2e86c1"]),
            ),
        )
    )
    st.altair_chart(chart, width="stretch")
    raised = [f["label"] for f in explanation["factors"] if f["contribution"] > 0]
    lowered = [f["label"] for f in explanation["factors"] if f["contribution"] < 0]
    st.caption(
        f"Raised most by: {', '.join(raised) or 'none'}. Lowered most by: "
        f"{', '.join(lowered) or 'none'}. Each bar is what that field of this encounter adds to "
        "the model's log-odds compared with an average encounter; the other fields together add "
        f"{explanation['other_factors']:+.2f}. These are the model's reasons, not causes."
    )


def single_tab(client: ApiClient) -> None:
    record = encounter_form()
    if record is not None:
        st.session_state["last_record"] = record
    record = st.session_state.get("last_record")
    if record is None:
        return
    try:
        result = client.predict(record, explain_top=TOP_FACTORS)
        show_prediction(result)
        if result.get("explanation"):
            show_reasons(result["explanation"])
    except ApiCallError as problem:
        st.error(str(problem))
        st.button("Retry", key="retry-single")


def batch_tab(client: ApiClient) -> None:
    st.write(
        "Upload encounters as a CSV in the data set's own column format "
        "(`?` or empty for unknown). Other columns, such as `encounter_id` or `patient_nbr`, "
        "stay in this page beside each result and in the download; they are not sent to the api."
    )
    st.download_button(
        "Download a template", template_csv(), "encounters-template.csv", mime="text/csv"
    )
    upload = st.file_uploader("Encounters CSV", type=["csv"], key="batch-file")
    if upload is None:
        return
    try:
        parsed = parse_csv(upload.getvalue(), UiSettings().ui_max_rows)
    except (ValueError, UnicodeDecodeError) as exc:
        st.error(f"This file cannot be read: {exc}")
        return
    if parsed.invalid:
        st.warning(f"{len(parsed.invalid)} row(s) cannot be scored and were left out:")
        st.dataframe(pd.DataFrame(parsed.invalid, columns=["row", "reason"]), hide_index=True)
    if not parsed.valid:
        return
    bar = st.progress(0.0, text=f"Scoring {len(parsed.valid)} encounters ...")
    try:
        results = predict_in_chunks(
            client.predict_batch, [r for _, r in parsed.valid], lambda done: bar.progress(done)
        )
    except ApiCallError as problem:
        st.error(str(problem))
        st.button("Retry", key="retry-batch")
        return
    table = pd.DataFrame(
        [
            {"row": n, **ids, **r}
            for (n, _), ids, r in zip(parsed.valid, parsed.ids, results, strict=True)
        ]
    )
    st.success(
        f"Scored {len(table)} encounters; {int(table['readmitted_within_30_days'].sum())} "
        "flagged for follow-up."
    )
    st.dataframe(table, hide_index=True)
    st.bar_chart(
        pd.cut(table["readmission_risk"], bins=[i / 20 for i in range(21)])
        .value_counts(sort=False)
        .rename(lambda b: f"{b.left:.0%}-{b.right:.0%}")
    )
    st.download_button(
        "Download results", table.to_csv(index=False), "readmission-risk.csv", mime="text/csv"
    )


def model_tab(client: ApiClient) -> None:
    try:
        info = client.model()
    except ApiCallError as problem:
        st.error(str(problem))
        st.button("Retry", key="retry-model")
        return
    training = info.get("training", {})
    st.write(
        f"**{info['name']}** version **{info['version']}** (alias `{info['alias']}`), "
        f"{info['algorithm']}, trained {training.get('trained_at', 'at an unknown time')}, "
        f"serving since {info['loaded_at']}."
    )
    st.write(f"Flag threshold: {info['threshold']:.1%} (chosen on validation data).")
    metrics = {part: training.get(part, {}) for part in ("validation", "test")}
    if metrics["test"]:
        st.dataframe(pd.DataFrame(metrics).rename_axis("metric"))
    importance = training.get("importance")
    if importance:
        st.subheader("What the model weighs most")
        top = list(importance.items())[:15]
        st.bar_chart(
            pd.DataFrame(
                {
                    "field": [label(k) for k, _ in top],
                    "mean |effect| (log-odds)": [v for _, v in top],
                }
            ),
            x="field",
            y="mean |effect| (log-odds)",
            horizontal=True,
            sort=False,
        )
        st.caption("Each field's average size of effect on the log-odds, over held-out test data.")
    st.caption(
        "Trained on the UCI Diabetes 130-US hospitals data set (1999-2008, CC BY 4.0); "
        "a risk score to prioritise follow-up, not a diagnosis."
    )


def main() -> None:
    st.set_page_config(page_title="Readmission risk", layout="wide")
    settings = UiSettings()
    user = signed_in_user(settings)  # nothing below renders before a sign-in
    sign_out_button(settings, user)
    st.title("30-day readmission risk")
    st.caption("For diabetic patients at discharge. Enter one encounter, or upload many.")
    client = ApiClient.from_settings(settings, user)
    single, batch, model = st.tabs(["Single encounter", "Batch (CSV)", "Model"])
    with single:
        single_tab(client)
    with batch:
        batch_tab(client)
    with model:
        model_tab(client)


main()
