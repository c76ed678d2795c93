/* The 28x28 the model sees, white ink on black as in MNIST: gr.HTML's js_on_load for
 * digitnet/ui/charts.py's input_view(). Its value is 28 rows of 28 numbers in [0, 1], or null;
 * or, for a number, {digits: [{label, top: [[label, p], ...], unsure, image: 28 rows}, ...]}:
 * one tile per digit, its 28x28 and its likeliest labels. A click on a tile (or Enter/Space,
 * they are buttons) selects that digit, which the Why panel then explains: the selection is
 * .view-digits' data-selected (charts.selected_digit_js reads it) and fires "select". */

function paint(canvas, rows) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let i = 0; i < 28 * 28; i++) {
    const level = rows ? Math.round(255 * Math.min(1, Math.max(0, rows[Math.floor(i / 28)][i % 28]))) : 0;
    image.data[4 * i] = level;
    image.data[4 * i + 1] = level;
    image.data[4 * i + 2] = level;
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function percent(p) {
  return `${Math.round(100 * p)}%`;
}

/** Mark the selected tile (aria-pressed), keeping the selection within the digits shown. */
function markSelected(tiles) {
  const holder = element.querySelector(".view-digits");
  let selected = Number(holder.dataset.selected ?? 0);
  if (!(selected >= 0 && selected < tiles.length)) selected = 0;
  holder.dataset.selected = String(selected);
  tiles.forEach((tile, k) => tile.setAttribute("aria-pressed", String(k === selected)));
}

function renderNumber(digits) {
  const holder = element.querySelector(".view-digits");
  // Tiles are made once per count of digits and repainted after: a frame's update must not
  // rebuild the DOM (nor lose the keyboard focus of a tile).
  let tiles = Array.from(holder.querySelectorAll(".view-digit"));
  if (tiles.length !== digits.length) {
    holder.replaceChildren();
    tiles = digits.map((_, k) => {
      const tile = document.createElement("button");
      tile.type = "button";
      tile.className = "view-digit";
      tile.dataset.index = String(k);
      const canvas = document.createElement("canvas");
      canvas.width = 28;
      canvas.height = 28;
      const caption = document.createElement("span");
      caption.className = "view-digit-top";
      tile.append(canvas, caption);
      tile.addEventListener("click", () => {
        holder.dataset.selected = String(k);
        markSelected(Array.from(holder.querySelectorAll(".view-digit")));
        trigger("select");
      });
      holder.append(tile);
      return tile;
    });
  }
  digits.forEach((digit, k) => {
    const tile = tiles[k];
    paint(tile.querySelector("canvas"), digit.image);
    const top = (digit.top ?? []).map(([label, p]) => `${label} ${percent(p)}`).join(" · ");
    tile.querySelector(".view-digit-top").textContent = top;
    tile.classList.toggle("view-digit-unsure", Boolean(digit.unsure));
    tile.setAttribute("aria-label", `Digit ${k + 1}: ${digit.label} (${top}); explain it`);
  });
  markSelected(tiles);
}

function render() {
  const value = props.value;
  const digits = value && !Array.isArray(value) && Array.isArray(value.digits) ? value.digits : null;
  const rows = Array.isArray(value) ? value : null;
  const single = element.querySelector(".view-single");
  const number = element.querySelector(".view-number");
  single.hidden = Boolean(digits);
  number.hidden = !digits;
  if (digits) {
    renderNumber(digits);
  } else {
    paint(single.querySelector("canvas"), rows);
    element.querySelector(".view-digits").dataset.selected = "0"; // a new number starts at its first digit
  }
  element.classList.toggle("view-empty", !rows && !digits);
}

watch("value", render);
render();
