// bench/buildpack_cache.py's Node app: answers on $PORT with what it was built with.
const express = require("express");
const dayjs = require("dayjs");
const _ = require("lodash");
const fs = require("fs");

const body = fs.existsSync(__dirname + "/BODY") ? fs.readFileSync(__dirname + "/BODY", "utf8").trim() : "v1";
const app = express();
app.get("/", (req, res) => res.type("text").send(`hello from node ${body}: ${_.kebabCase("Express And Friends")} ${dayjs(0).year()}\n`));
app.listen(Number(process.env.PORT));
