/* Every model's ten probabilities as grouped bars: gr.HTML's js_on_load for
 * digitnet/ui/charts.py's probability_bars(). Its value is {"MLP": [p0..p9], "CNN": [...]}, or
 * null for a blank pad; it is set by the browser every frame and by the server's check. */
const legend = element.querySelector(".bars-legend");
const chart = element.querySelector(".bars-chart");
let shownModels = "";

function build(names) {
  legend.replaceChildren();
  chart.replaceChildren();
  names.forEach((name, index) => {
    const entry = document.createElement("span");
    entry.className = `bars-entry model-${index}`;
    entry.dataset.model = name;
    legend.appendChild(entry);
  });
  for (let digit = 0; digit < 10; digit++) {
    const group = document.createElement("div");
    group.className = "bars-group";
    const bars = document.createElement("div");
    bars.className = "bars-columns";
    names.forEach((name, index) => {
      const bar = document.createElement("div");
      bar.className = `bars-bar model-${index}`;
      bar.dataset.model = name;
      bars.appendChild(bar);
    });
    const label = document.createElement("div");
    label.className = "bars-digit";
    label.textContent = String(digit);
    group.append(bars, label);
    chart.appendChild(group);
  }
}

function render() {
  const value = props.value && typeof props.value === "object" ? props.value : {};
  const names = Object.keys(value);
  if (names.join("\n") !== shownModels) {
    shownModels = names.join("\n");
    build(names);
  }
  element.classList.toggle("bars-empty", names.length === 0);
  names.forEach((name, index) => {
    const probs = value[name];
    let best = 0;
    for (let digit = 1; digit < 10; digit++) if (probs[digit] > probs[best]) best = digit;
    legend.children[index].textContent = `${name}: ${best} (${(100 * probs[best]).toFixed(1)}%)`;
    for (let digit = 0; digit < 10; digit++) {
      const bar = chart.children[digit].firstChild.children[index];
      bar.style.height = `${(100 * probs[digit]).toFixed(1)}%`;
      bar.title = `${name}: ${digit} ${(100 * probs[digit]).toFixed(1)}%`;
    }
  });
}

watch("value", render);
render();
