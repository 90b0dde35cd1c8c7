// `npm start` (the nodejs buildpack's default web process): answers on $PORT.
const http = require("http");
const fs = require("fs");
const ms = require("ms");

const built = fs.readFileSync(__dirname + "/build/message.txt", "utf8");
const body = fs.existsSync(__dirname + "/BODY") ? fs.readFileSync(__dirname + "/BODY", "utf8").trim() : "v1";

http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(`hello from node ${body}: ms('2 days') is ${ms("2 days")}, ${built}\n`);
}).listen(Number(process.env.PORT));
