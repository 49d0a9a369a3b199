// Package gateway is the process that faces the internet: it serves every
// minion at https://<host>, with certificates from an ACME CA (certmagic),
// and proxies to the minion's backend (net/http/httputil).
//
// The bot, which holds the Docker socket, sends the whole route table over
// a local unix socket (Client.SetRoutes); the gateway holds only its
// certificates. It must never import the Docker client nor open the socket.
// Each route is validated on its own, so one bad minion never takes the
// others down, and a known host whose minion is not up gets a 503 page
// naming it, never another minion's content.
package gateway
