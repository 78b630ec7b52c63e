// Progressive enhancement only: every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Ask before destructive actions (forms marked data-confirm).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  // Folder browser: choosing a file fills the path field without reloading the page.
  var pathField = document.getElementById("dataset-path");
  if (pathField) {
    document.querySelectorAll("a[data-choose]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        pathField.value = link.getAttribute("data-choose");
        document.querySelectorAll("a[data-choose].chosen").forEach(function (other) {
          other.classList.remove("chosen");
        });
        link.classList.add("chosen");
        var name = document.querySelector("#dataset-form input[name=name]");
        if (name && !name.value) {
          name.focus();
        }
      });
    });
  }
});
