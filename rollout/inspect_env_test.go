package rollout

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testZone is the data of the DNS server a test starts on loopback. It
// answers like a recursive resolver: CNAMEs are chased within the zone
// unless the name is in noChase, so the inspector must ask again.
type testZone struct {
	mu      sync.Mutex
	rrs     map[string][]dns.RR // by lower-case FQDN
	noChase map[string]bool
	// tcpQueries counts the queries that came over TCP.
	tcpQueries int
}

func newTestZone() *testZone {
	return &testZone{rrs: map[string][]dns.RR{}, noChase: map[string]bool{}}
}

// add adds records in zone-file syntax.
func (z *testZone) add(t testing.TB, lines ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("dns.NewRR(%q): %v", l, err)
		}
		k := strings.ToLower(rr.Header().Name)
		z.rrs[k] = append(z.rrs[k], rr)
	}
}

// del removes every record at name.
func (z *testZone) del(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.rrs, strings.ToLower(name))
}

// setNoChase makes the server answer name's CNAME without its target.
func (z *testZone) setNoChase(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.noChase[strings.ToLower(name)] = true
}

func (z *testZone) tcpCount() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.tcpQueries
}

func (z *testZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if w.LocalAddr().Network() == "tcp" {
		z.tcpQueries++
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	found := false
	for hops := 0; hops < 10; hops++ {
		rrs, ok := z.rrs[name]
		if !ok {
			break
		}
		found = true
		var next string
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			} else if cn, ok := rr.(*dns.CNAME); ok {
				m.Answer = append(m.Answer, rr)
				next = strings.ToLower(cn.Target)
			}
		}
		if next == "" || z.noChase[name] {
			break
		}
		name = next
	}
	if !found {
		m.Rcode = dns.RcodeNameError
	}
	if w.LocalAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// startDNS serves z over UDP and TCP on one loopback port and returns
// its address.
func startDNS(t testing.TB, z *testZone) string {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listening on udp: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatalf("listening on tcp: %v", err)
		}
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsrpt test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for names.
func (ca *testCA) leaf(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// policySite is what the test HTTPS server answers for one mta-sts host.
type policySite struct {
	status      int
	contentType string
	body        string
	location    string
	hang        bool
}

// policyServer is the HTTPS server of a test, dispatching on the Host.
type policyServer struct {
	mu    sync.Mutex
	sites map[string]policySite
	hits  map[string]int
	// release ends the requests of hanging sites.
	release chan struct{}
}

func (p *policyServer) set(host string, s policySite) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sites[host] = s
}

func (p *policyServer) hitsOf(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[host]
}

func (p *policyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	p.mu.Lock()
	s, ok := p.sites[host]
	p.hits[host]++
	p.mu.Unlock()
	if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
		http.NotFound(w, r)
		return
	}
	if s.hang {
		<-p.release
		return
	}
	if s.location != "" {
		w.Header().Set("Location", s.location)
	}
	if s.contentType != "" {
		w.Header().Set("Content-Type", s.contentType)
	}
	status := s.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write([]byte(s.body))
}

// startPolicyServer serves sites over HTTPS on a loopback port with a
// certificate for certNames issued by ca, and returns the server and
// its port.
func startPolicyServer(t testing.TB, ca *testCA, certNames ...string) (*policyServer, string) {
	t.Helper()
	ps := &policyServer{sites: map[string]policySite{}, hits: map[string]int{}, release: make(chan struct{})}
	srv := httptest.NewUnstartedServer(ps)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, certNames...)}}
	// The certificate test makes handshakes fail on purpose.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(ps.release) }) // runs before srv.Close
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return ps, port
}
