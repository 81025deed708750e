// The CSAT survey after a resolve: 1-5 and an optional comment (not kept across reloads: the server
// sends a survey still open again when the page comes back).

import { isOpen } from "./connection.js";
import { $, state, t } from "./state.js";

const survey = { id: null, score: null, done: false };

export function onSurvey(frame) {
  if (!frame.survey_id || survey.id === frame.survey_id) return;
  Object.assign(survey, { id: frame.survey_id, score: null, done: false });
  $("survey-question").textContent = typeof frame.question === "string" ? frame.question : t("survey.question");
  const scores = $("survey-scores");
  scores.replaceChildren();
  for (const n of Array.isArray(frame.scores) ? frame.scores : [1, 2, 3, 4, 5]) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = String(n); b.dataset.score = String(n); b.setAttribute("aria-pressed", "false");
    b.setAttribute("aria-label", t("survey.score", { score: n }));
    b.addEventListener("click", () => {
      if (survey.done) return;
      survey.score = n;
      for (const other of scores.children) other.setAttribute("aria-pressed", String(other === b));
      $("survey-send").disabled = false;
    });
    scores.appendChild(b);
  }
  $("survey-comment").hidden = frame.comment === false;
  $("survey-note").textContent = "";
  $("survey-send").disabled = true;
  $("survey").hidden = false;
}

export function onSurveyAnswer(frame) {
  if (frame.survey_id !== survey.id) return;
  if (frame.type === "csat.recorded") {
    survey.done = true;
    $("survey-note").textContent = t("survey.thanks");
    for (const b of $("survey-scores").children) b.disabled = true;
    $("survey-comment").disabled = true;
    return;
  }
  $("survey-note").textContent = frame.message || t("survey.not_recorded");
  $("survey-send").disabled = frame.reason === "late" || frame.reason === "repeated";
}

export function wireSurvey() {
  $("survey-send").addEventListener("click", () => {
    if (!survey.id || survey.score == null || !isOpen()) return;
    const comment = $("survey-comment").value.trim();
    $("survey-send").disabled = true;
    state.socket.send({ type: "csat", survey_id: survey.id, score: survey.score, comment: comment || null });
  });
}
